// Package pipeline is `taskotron up`: the same role values the separate
// commands run (server.Server, trigger.Service, worker.Service) composed in
// one process on the embedded defaults: messages from files, one on-disk job
// queue, the central server on SQLite, and (for tasks that talk to Koji,
// Bodhi or dist-git) the service doubles over fixtures. It builds no role
// itself.
// It also unpacks the demo built into the binary, for `up` outside a
// checkout (UnpackDemo), and draws the live progress `up` shows on a
// terminal (Live).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/fakes"
	"github.com/taskotron-go/taskotron/labs"
	"github.com/taskotron-go/taskotron/resultsdb"
	"github.com/taskotron-go/taskotron/server"
	"github.com/taskotron-go/taskotron/status"
	"github.com/taskotron-go/taskotron/trigger"
	"github.com/taskotron-go/taskotron/worker"
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
	// Watch, when set, is called once the roles are built, before any
	// message is read, with a function that tells the progress at any time
	// (for a live display).
	Watch func(progress func() Progress)
}

// Up runs the whole pipeline and returns what became of every message: the
// same role values as the separate commands (server.New, trigger.NewService,
// worker.NewService), over the embedded defaults and one in-process job
// queue.
func Up(ctx context.Context, opts Options) (*Summary, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config.Resolved()
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
	var roles sync.WaitGroup
	// The server outlives the other roles: it is stopped last, once they
	// have delivered what they hold.
	stopServer := func() {}
	defer func() { stopServer(); roles.Wait() }()
	browseURL := cfg.ResultsDB.URL
	if cfg.ResultsDB.URL == "" {
		srvOpts := server.Options{
			Token: cfg.ResultsDB.Token, Publish: cfg.ResultsDB.Publish, ArtifactsDir: cfg.Runner.ArtifactsDir, Status: ops,
		}
		srv, err := server.New(ctx, cfg, log.With("role", "resultsdb"), srvOpts)
		if errors.Is(err, syscall.EADDRINUSE) {
			// Another up (or anything else) holds the port: a demo needs
			// one port, not that one. The URL printed tells where.
			if host, _, serr := net.SplitHostPort(cfg.ResultsDB.Listen); serr == nil {
				srvOpts.Listen = net.JoinHostPort(host, "0")
				log.Warn("resultsdb.listen is taken, listening on a free port instead", "listen", cfg.ResultsDB.Listen, "err", err)
				srv, err = server.New(ctx, cfg, log.With("role", "resultsdb"), srvOpts)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("embedded ResultsDB: %w", err)
		}
		base := srv.URL()
		if cfg.Runner.ArtifactsURL == "" {
			cfg.Runner.ArtifactsURL = base + "/artifacts"
		}
		cfg.ResultsDB.URL = base + resultsdb.APIPrefix
		if cfg.ExecDB.URL == "" {
			// The workers write into the artifacts folder the server serves.
			cfg.ExecDB.URL, cfg.ExecDB.UploadArtifacts = base, false
		}
		if cfg.Reporter.ExecDBURL == "" {
			// Each result's group links to its execution's page.
			cfg.Reporter.ExecDBURL = base
		}
		srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopServer = cancel
		roles.Add(1)
		go func() {
			defer roles.Done()
			if err := srv.Run(srvCtx); err != nil {
				log.Error("embedded ResultsDB stopped", "err", err)
			}
		}()
		browseURL = base + "/"
	}
	if opts.Ready != nil {
		opts.Ready(browseURL)
	}

	queue, err := bus.OpenDiskQueue(cfg.QueueDir())
	if err != nil {
		return nil, err
	}
	t := newTally()
	route, err := labs.Routing(cfg, log)
	if err != nil {
		return nil, err
	}
	trig, err := trigger.NewService(ctx, cfg, log.With("role", "trigger"), trigger.ServiceOptions{
		Route:    route,
		Messages: opts.Messages, Stdin: opts.Stdin, Queue: queue,
		OnOutcome: func(m trigger.MessageOutcome) { t.message(messageSummary(m)) },
	})
	if err != nil {
		return nil, err
	}
	defer trig.Close()
	work, err := worker.NewService(ctx, cfg, log, worker.ServiceOptions{
		Queue:  queue,
		OnDone: func(_ contract.Job, exec contract.Execution) { t.executed(exec) },
	})
	if err != nil {
		return nil, err
	}
	trig.AddStatus(ops)
	work.AddStatus(ops)
	if opts.Watch != nil {
		opts.Watch(func() Progress { return t.progress(ops) })
	}

	var wg sync.WaitGroup
	var relayErr, workErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := trig.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			relayErr = err
		}
		if opts.Once {
			queue.Seal()
			return
		}
		if opts.Drained != nil && waitIdle(ctx, queue) {
			if err := work.Flush(ctx); err != nil {
				log.Warn("results stay spooled", "err", err)
			}
			opts.Drained(t.summary(browseURL))
		}
	}()
	go func() {
		defer wg.Done()
		if err := work.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			workErr = err
		}
	}()
	wg.Wait()
	// Results spooled while ResultsDB was away go out before `up` ends.
	if err := work.Flush(ctx); err != nil && ctx.Err() == nil {
		workErr = errors.Join(workErr, fmt.Errorf("reporter: %w", err))
	}
	if !opts.Once {
		<-ctx.Done() // keep serving results until stopped
	}
	return t.summary(browseURL), errors.Join(relayErr, workErr)
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
