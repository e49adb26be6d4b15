// Package pipeline runs every role of the pipeline in one process on the
// embedded defaults: messages from files, the trigger, an on-disk job queue,
// workers, the reporter, an embedded ResultsDB on SQLite, and (for tasks
// that talk to Koji, Bodhi or dist-git) the service doubles over fixtures.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/fakes"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb"
	"github.com/taskotron-go/taskotron/runner"
	"github.com/taskotron-go/taskotron/status"
	"github.com/taskotron-go/taskotron/trigger"
)

// Options configure one `up`.
type Options struct {
	Config config.Config
	// Messages are files or folders of bus messages; "-" is Stdin. Empty
	// means trigger.messages.
	Messages []string
	Stdin    io.Reader
	// TasksDir seeds the task mirror when the mirror does not exist yet.
	TasksDir string
	// Fixtures, when set, starts the Koji, Bodhi and dist-git doubles over
	// that folder and points the configuration at them.
	Fixtures string
	// Once returns when every message is handled and the queue is drained;
	// otherwise Up keeps serving results until ctx ends.
	Once bool
	Log  *slog.Logger
	// Ready is called with the URL to browse results at, once the server
	// listens and before any message is read.
	Ready func(url string)
	// Drained, without Once, is called with the summary when every message
	// is handled and the queue is empty; Up then goes on serving.
	Drained func(*Summary)
}

// Up runs the whole pipeline and returns what became of every message.
func Up(ctx context.Context, opts Options) (*Summary, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := withDataPaths(opts.Config)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.DataDir, cfg.Runner.ArtifactsDir, cfg.Runner.WorkDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("data folder: %w", err)
		}
	}
	if err := ensureMirror(cfg.Runner.Mirror, opts.TasksDir, log); err != nil {
		return nil, err
	}
	if opts.Fixtures != "" {
		doubles, err := fakes.Start(opts.Fixtures, fakes.AnyPort, log.With("role", "fakes"))
		if err != nil {
			return nil, fmt.Errorf("service doubles: %w", err)
		}
		defer doubles.Close()
		doubles.Apply(&cfg)
	}

	// Ops see the roles on the results port (and on status.listen when set).
	ops := status.New("up")
	if cfg.Status.Listen != "" {
		addr, err := ops.Listen(ctx, cfg.Status.Listen, log)
		if err != nil {
			return nil, err
		}
		log.Info("status listening", "url", "http://"+addr+"/status")
	}
	browseURL := cfg.ResultsDB.URL
	if cfg.ResultsDB.URL == "" {
		srv, err := serveResults(ctx, &cfg, ops, log.With("role", "resultsdb"))
		if err != nil {
			return nil, err
		}
		defer srv.close()
		browseURL = srv.base + "/"
	}
	if opts.Ready != nil {
		opts.Ready(browseURL)
	}

	queue, err := bus.OpenDiskQueue(cfg.QueueDir())
	if err != nil {
		return nil, err
	}
	setup, err := trigger.FromConfig(ctx, cfg, "", true, log.With("role", "trigger"))
	if err != nil {
		return nil, err
	}
	defer setup.Close()
	trig := trigger.New(setup.Options)

	rep, err := reporter.New(reporter.OptionsFromConfig(cfg, log.With("role", "reporter")))
	if err != nil {
		return nil, err
	}
	go func() {
		// Sends what was spooled while ResultsDB was away, even when no
		// job finishes to carry it along.
		if err := rep.Run(ctx, cfg.Reporter.FlushInterval); err != nil && ctx.Err() == nil {
			log.Error("spool loop stopped", "role", "reporter", "err", err)
		}
	}()
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		return nil, err
	}
	run := runner.New(runner.Options{Config: cfg, Checkout: co, Log: log.With("role", "runner")})

	t := newTally()
	live := &trigger.Live{}
	tracker := runner.NewTracker(run)
	status.AddTrigger(ops, status.TriggerParts{Live: live, Rules: func() (string, int) { r := trig.Rules(); return r.Name, r.Len() }})
	status.AddWorker(ops, status.WorkerParts{Tracker: tracker, Concurrency: cfg.Runner.Concurrency})
	status.AddDiskQueue(ops, queue)
	status.AddSpool(ops, cfg.Path(cfg.Reporter.Spool))
	worker := runner.NewWorker(runner.WorkerOptions{
		Queue:       tracker.Queue(queue),
		Runner:      run,
		Reporter:    tracker.Reporter(rep),
		Concurrency: cfg.Runner.Concurrency,
		MaxWaiting:  cfg.Runner.MaxWaiting,
		MaxAttempts: cfg.Runner.MaxAttempts,
		Log:         log.With("role", "worker"),
		OnRetryWait: tracker.RetryWait,
		OnDone: func(job contract.Job, exec contract.Execution) {
			tracker.Done(job, exec)
			t.executed(exec)
		},
	})

	msgPaths := opts.Messages
	if len(msgPaths) == 0 {
		msgPaths = []string{cfg.Trigger.Messages}
	}
	src, err := bus.OpenFiles(opts.Stdin, msgPaths...)
	if err != nil {
		return nil, err
	}
	src.OnReject = bus.DeadLetterFile(cfg.DeadLetterFile())
	jobLog, err := trigger.OpenJobLog(cfg)
	if err != nil {
		return nil, err
	}
	defer jobLog.Close()

	var wg sync.WaitGroup
	var relayErr, workErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := trigger.RelayWith(ctx, src, trig, queue, trigger.RelayOptions{
			Log:    log.With("role", "trigger"),
			JobLog: jobLog,
			OnOutcome: func(m trigger.MessageOutcome) {
				live.Observe(m)
				t.message(messageSummary(m))
			},
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			relayErr = fmt.Errorf("trigger: %w", err)
		}
		if opts.Once {
			queue.Seal()
			return
		}
		if opts.Drained != nil && waitIdle(ctx, queue) {
			if err := rep.Flush(ctx); err != nil {
				log.Warn("results stay spooled", "err", err)
			}
			opts.Drained(t.summary(browseURL))
		}
	}()
	go func() {
		defer wg.Done()
		if err := worker.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			workErr = fmt.Errorf("worker: %w", err)
		}
	}()
	wg.Wait()
	// Results spooled while ResultsDB was away go out before `up` ends.
	if err := rep.Flush(ctx); err != nil && ctx.Err() == nil {
		workErr = errors.Join(workErr, fmt.Errorf("reporter: %w", err))
	}
	if !opts.Once {
		<-ctx.Done() // keep serving results until stopped
	}
	return t.summary(browseURL), errors.Join(relayErr, workErr)
}

// withDataPaths fills every path the configuration leaves empty with its
// place below data_dir, so each role sees the same folders.
func withDataPaths(cfg config.Config) (config.Config, error) {
	// Absolute, so that a role applying data_dir to a path again (as
	// config.Path does to relative ones) finds the same place.
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, fmt.Errorf("data_dir %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	set := func(v *string, name string) {
		if *v == "" {
			*v = cfg.Path(name)
		}
	}
	set(&cfg.Runner.ArtifactsDir, "artifacts")
	set(&cfg.Runner.WorkDir, "work")
	set(&cfg.Runner.Mirror, "mirror")
	set(&cfg.Reporter.Spool, "spool")
	set(&cfg.Trigger.JobLog, "jobs.jsonl")
	set(&cfg.Trigger.StateDB, "trigger.sqlite")
	if cfg.ResultsDB.DB == "" {
		cfg.ResultsDB.DB = "sqlite:" + cfg.Path("resultsdb.sqlite")
	}
	return cfg, nil
}

// resultsServer is the embedded ResultsDB with the artifacts beside it.
type resultsServer struct {
	base  string
	close func()
}

// serveResults starts the embedded ResultsDB and points cfg at it.
func serveResults(ctx context.Context, cfg *config.Config, ops *status.Server, log *slog.Logger) (*resultsServer, error) {
	publish := cfg.ResultsDB.Publish
	if publish && cfg.AMQP.URL == "" {
		return nil, errors.New("embedded ResultsDB: resultsdb.publish needs a broker in amqp.url (or TASKOTRON_AMQP_URL)")
	}
	store, err := resultsdb.Open(ctx, cfg.ResultsDB.DB)
	if err != nil {
		return nil, fmt.Errorf("embedded ResultsDB (resultsdb.db): %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ResultsDB.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("embedded ResultsDB: listen on %s (resultsdb.listen): %w", cfg.ResultsDB.Listen, err)
	}
	base := "http://" + ln.Addr().String()
	if cfg.Runner.ArtifactsURL == "" {
		cfg.Runner.ArtifactsURL = base + "/artifacts"
	}
	cfg.ResultsDB.URL = base + resultsdb.APIPrefix
	mux := http.NewServeMux()
	ops.Mount(mux)
	mux.Handle("/artifacts/", http.StripPrefix("/artifacts/", http.FileServer(http.Dir(cfg.Runner.ArtifactsDir))))
	mux.Handle("/", resultsdb.NewServer(store, resultsdb.Options{
		BaseURL:            base,
		Token:              cfg.ResultsDB.Token,
		AdditionalOutcomes: cfg.ResultsDB.AdditionalOutcomes,
		ArtifactsURL:       cfg.Runner.ArtifactsURL,
		Log:                log,
		Events:             publish,
	}))
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded ResultsDB stopped", "err", err)
		}
	}()
	// The publisher sends what the outbox holds, also what an earlier run
	// left there; on close it gets a few seconds to send what the last
	// results queued, and stops before the store closes under it.
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	var pub *resultsdb.Publisher
	if publish {
		pub = resultsdb.NewPublisher(store, resultsdb.PublisherOptions{
			URL: cfg.AMQP.URL, Exchange: cfg.AMQP.Exchange, BaseURL: base, Log: log,
		})
		go func() {
			defer close(pubDone)
			if err := pub.Run(pubCtx); err != nil {
				log.Error("result events publisher stopped", "err", err)
			}
		}()
	} else {
		close(pubDone)
	}
	return &resultsServer{base: base, close: func() {
		server.Close()
		if pub != nil {
			drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := pub.Drain(drain); err != nil {
				log.Warn("result events left in the outbox for the next start", "err", err)
			}
			cancel()
		}
		stopPub()
		<-pubDone
		store.Close()
	}}, nil
}

// ensureMirror builds the task mirror from the tasks folder when there is
// no mirror yet, so that `up` works on a fresh checkout.
func ensureMirror(mirror, tasksDir string, log *slog.Logger) error {
	if _, err := os.Stat(mirror); err == nil {
		return nil
	}
	if tasksDir == "" {
		return fmt.Errorf("task mirror %s does not exist (run 'taskotron mirror --tasks tasks --mirror %s')", mirror, mirror)
	}
	log.Info("building the task mirror", "from", tasksDir, "to", mirror)
	if err := checkout.Seed(tasksDir, mirror); err != nil {
		return fmt.Errorf("task mirror: %w", err)
	}
	return nil
}

// waitIdle waits until the queue has nothing pending or in flight.
func waitIdle(ctx context.Context, q *bus.DiskQueue) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if pending, inflight := q.Len(); pending == 0 && inflight == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
