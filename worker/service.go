package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
	"github.com/taskotron-go/taskotron/status"
)

// ServiceOptions are what the command line (or `up`) adds to the
// configuration.
type ServiceOptions struct {
	// Concurrency is how many jobs run at once; 0 means runner.concurrency.
	Concurrency int
	// Arches are the job queues taken from on RabbitMQ; none means
	// trigger.arches and noarch.
	Arches []string
	// Grace is how long running jobs may go on once the worker is told to
	// stop: 0 lets them finish, negative hands them back at once.
	Grace time.Duration
	// StatusAddr, when set, serves /healthz, /metrics, /status there.
	StatusAddr string
	// StatusGrace is how long the job queue may be unreachable before
	// /healthz says so (default 10 s).
	StatusGrace time.Duration
	// Queue, when set, is the job queue to use (`up`'s in-process queue);
	// otherwise the configuration's is opened.
	Queue bus.JobQueue
	// OnDone is called for every job reported and acked.
	OnDone func(contract.Job, contract.Execution)
}

// Service is the worker role: jobs from the job queue, run by the runner,
// results delivered by the reporter, whose spool is flushed every
// reporter.flush_interval whether jobs come or not.
type Service struct {
	cfg     config.Config
	log     *slog.Logger
	opts    ServiceOptions
	queue   bus.JobQueue
	closeQ  func() error
	runner  *runner.Runner
	rep     *reporter.Reporter
	tracker *Tracker
	worker  *Worker
	// execs reports to the central server; nil without execdb.url.
	execs  *executions
	outbox *execdb.Outbox
	client *execdb.Client
}

// NewService builds the worker role from the configuration: its job queue
// (RabbitMQ with amqp.url, else on disk), task checkout, runner and
// reporter.
func NewService(ctx context.Context, cfg config.Config, log *slog.Logger, o ServiceOptions) (*Service, error) {
	cfg = cfg.Resolved()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = cfg.Runner.Concurrency
	}
	if o.StatusGrace <= 0 {
		o.StatusGrace = 10 * time.Second
	}
	s := &Service{cfg: cfg, log: log, opts: o}
	wopts := Options{
		Concurrency: o.Concurrency, MaxWaiting: cfg.Runner.MaxWaiting, MaxAttempts: cfg.Runner.MaxAttempts,
		ShutdownGrace: o.Grace, Log: log.With("role", "worker"),
	}
	s.queue, s.closeQ = o.Queue, func() error { return nil }
	if s.queue == nil {
		q, closeQ, err := bus.OpenJobQueue(ctx, cfg, log, bus.Consumer{Arches: o.Arches, Prefetch: wopts.Prefetch(), Running: o.Concurrency})
		if err != nil {
			return nil, err
		}
		s.queue, s.closeQ = q, closeQ
	}
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		s.closeQ()
		return nil, err
	}
	rep, err := reporter.New(reporter.OptionsFromConfig(cfg, log.With("role", "reporter")))
	if err != nil {
		s.closeQ()
		return nil, err
	}
	s.rep = rep
	ropts := runner.Options{Config: cfg, Checkout: co, Log: log.With("role", "runner")}
	var delivery Reporter = rep
	if cfg.ExecDB.URL != "" {
		if s.client, err = execdb.NewClient(cfg.ExecDB.URL, cfg.ExecDB.Token, log); err != nil {
			s.closeQ()
			return nil, fmt.Errorf("execdb.url: %w", err)
		}
		if s.outbox, err = execdb.OpenOutbox(cfg.OutboxDir(), "worker", log); err != nil {
			s.closeQ()
			return nil, err
		}
		s.execs = newExecutions(s.outbox, s.client, cfg.Runner.ArtifactsDir, cfg.ExecDB.UploadArtifacts, cfg.ExecDB.MaxArtifacts, log.With("role", "worker"))
		ropts.OnAction = s.execs.action
		delivery = uploadingReporter{Reporter: rep, e: s.execs}
		wopts.Observer = s.execs
	}
	s.runner = runner.New(ropts)
	s.tracker = NewTracker(s.runner)
	wopts.Queue, wopts.Runner, wopts.Reporter = s.tracker.Queue(s.queue), s.runner, s.tracker.Reporter(delivery)
	wopts.OnRetryWait = s.tracker.RetryWait
	wopts.Stored = rep.Stored
	wopts.OnDone = func(job contract.Job, exec contract.Execution) {
		s.tracker.Done(job, exec)
		if o.OnDone != nil {
			o.OnDone(job, exec)
		}
	}
	s.worker = New(wopts)
	return s, nil
}

// Run works until ctx ends (or an on-disk queue that was sealed drains),
// then lets the running jobs finish as Grace says and releases the queue.
// Meanwhile the reporter's spool is sent every reporter.flush_interval, and
// the status endpoints are served when StatusAddr is set.
func (s *Service) Run(ctx context.Context) error {
	defer s.closeQ()
	if s.opts.StatusAddr != "" {
		srv := status.New("worker")
		s.AddStatus(srv)
		addr, err := srv.Listen(ctx, s.opts.StatusAddr, s.log)
		if err != nil {
			return err
		}
		s.log.Info("status listening", "url", "http://"+addr+"/status")
	}
	if s.outbox != nil {
		outboxCtx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
		outboxDone := make(chan struct{})
		go func() { defer close(outboxDone); s.outbox.Run(outboxCtx, s.client.Post) }()
		defer func() {
			// The last state changes and log tails go out before the outbox
			// stops; what the server does not take waits on disk.
			s.execs.wait(30 * time.Second)
			stopOutbox()
			<-outboxDone
			s.outbox.Close()
		}()
	}
	flushCtx, stopFlush := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Sends what was spooled while ResultsDB or Bodhi was away, even
		// when no job finishes to carry it along.
		if err := s.rep.Run(flushCtx, s.cfg.Reporter.FlushInterval); err != nil && flushCtx.Err() == nil {
			s.log.Error("spool loop stopped", "role", "reporter", "err", err)
		}
	}()
	err := s.worker.Run(ctx)
	stopFlush()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// Flush sends what the reporter's spool holds now.
func (s *Service) Flush(ctx context.Context) error { return s.rep.Flush(ctx) }

// AddStatus adds the worker's health check, metrics and /status section,
// with its job queue's and spool's.
func (s *Service) AddStatus(srv *status.Server) {
	amqpQueue, _ := s.queue.(*bus.AMQPJobQueue)
	if amqpQueue != nil {
		srv.AddCheck(status.Check{Name: "job queue", Grace: s.opts.StatusGrace, Probe: func() error {
			if !amqpQueue.Connected() {
				return fmt.Errorf("cannot reach the job queue on %s", bus.RedactURL(s.cfg.AMQP.URL))
			}
			return nil
		}})
	}
	tr := s.tracker
	srv.AddMetrics(func() []status.Metric {
		snap := tr.Snapshot()
		fin := status.Metric{Name: "taskotron_worker_jobs_finished_total", Type: status.Counter, Help: "Jobs reported and acked, by execution status."}
		for _, k := range status.SortedKeys(snap.Finished) {
			fin.Samples = append(fin.Samples, status.Sample{Labels: status.Labels("status", k), Value: float64(snap.Finished[k])})
		}
		out := []status.Metric{
			status.One("taskotron_worker_jobs_running", status.Gauge, "Jobs running (or reporting) now.", float64(len(snap.Running))),
			status.One("taskotron_worker_jobs_waiting_retry", status.Gauge, "Jobs held while they wait out the backoff before their next attempt.", float64(len(snap.Waiting))),
			status.One("taskotron_worker_concurrency", status.Gauge, "Jobs the worker runs at once at most.", float64(s.opts.Concurrency)),
			status.One("taskotron_worker_attempts_total", status.Counter, "Jobs taken from the queue (each attempt counts).", float64(snap.Attempts)),
			status.One("taskotron_worker_handed_back_total", status.Counter, "Jobs handed back to the queue (interrupted, or results not delivered).", float64(snap.HandedBack)),
			status.One("taskotron_worker_retries_total", status.Counter, "Jobs published again for a later attempt after an infrastructure failure.", float64(snap.Retries)),
		}
		if len(fin.Samples) > 0 {
			out = append(out, fin)
		}
		if amqpQueue != nil {
			out = append(out, status.One("taskotron_worker_queue_connected", status.Gauge, "1 while the worker is connected to the job queue's broker.", status.Flag(amqpQueue.Connected())))
		}
		return out
	})
	srv.AddSection("worker", func() any { return tr.Snapshot() })
	status.AddAMQPCounters(srv)
	switch q := s.queue.(type) {
	case *bus.AMQPJobQueue:
		status.AddBrokerQueues(srv, s.cfg, s.opts.Arches...)
	case *bus.DiskQueue:
		status.AddDiskQueue(srv, q)
	}
	status.AddSpool(srv, s.cfg.Reporter.Spool)
}
