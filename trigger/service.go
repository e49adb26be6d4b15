package trigger

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/status"
)

// ServiceOptions are what the command line (or `up`) adds to the
// configuration.
type ServiceOptions struct {
	// RulesPath, when set, overrides trigger.rules.
	RulesPath string
	// Workers is how many messages are in flight at once; 0 means
	// amqp.prefetch on RabbitMQ, 8 for files.
	Workers int
	// NoDedup does not remember messages and jobs (trigger.state_db).
	NoDedup bool
	// Messages are files, folders or "-" (Stdin) to read bus messages from;
	// none means RabbitMQ when amqp.url is set, else trigger.messages.
	Messages []string
	Stdin    io.Reader
	// Queue, when set, is the job queue to put jobs on (`up`'s in-process
	// queue); otherwise the configuration's is opened.
	Queue bus.JobQueue
	// StatusAddr, when set, serves /healthz, /metrics, /status there.
	StatusAddr string
	// StatusGrace is how long the broker may be away before /healthz says
	// so (default 10 s).
	StatusGrace time.Duration
	// OnOutcome is called with what became of each message.
	OnOutcome func(MessageOutcome)
	// Route, when set, wraps the job queue jobs are published to (the labs'
	// router: jobs with labels go to the central server as requests).
	Route func(bus.JobQueue) bus.JobQueue
}

// Service is the trigger role: bus messages from the source, jobs on the
// job queue (and in the job log), dedup state, rules that reload.
type Service struct {
	cfg      config.Config
	log      *slog.Logger
	opts     ServiceOptions
	setup    *Setup
	trig     *Trigger
	src      bus.Source
	closeSrc func() error
	queue    bus.JobQueue
	publish  bus.JobQueue // queue, or what Route made of it
	closeQ   func() error
	jobLog   *os.File
	live     *Live
	stats    Stats
	// outbox keeps the "queued" state changes for the central server;
	// nil without execdb.url.
	outbox *execdb.Outbox
	execs  *execdb.Client
}

// NewService builds the trigger role from the configuration: its rules and
// dedup state, its message source (RabbitMQ, or files), its job queue
// (RabbitMQ, or on disk) and its job log.
func NewService(ctx context.Context, cfg config.Config, log *slog.Logger, o ServiceOptions) (svc *Service, err error) {
	cfg = cfg.Resolved()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StatusGrace <= 0 {
		o.StatusGrace = 10 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
		if len(o.Messages) == 0 && cfg.AMQP.URL != "" && cfg.AMQP.Prefetch > 0 {
			// As many in flight as the broker hands over: a message's jobs
			// are confirmed while the next ones are handled.
			o.Workers = cfg.AMQP.Prefetch
		}
	}
	s := &Service{cfg: cfg, log: log, opts: o, live: &Live{}, closeSrc: noClose, closeQ: noClose}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.setup, err = FromConfig(ctx, cfg, o.RulesPath, !o.NoDedup, log); err != nil {
		return nil, err
	}
	s.trig = New(s.setup.Options)
	src, closeSrc, err := bus.OpenSource(ctx, cfg, o.Stdin, o.Messages, log)
	if err != nil {
		return nil, err
	}
	s.src, s.closeSrc = src, closeSrc
	if s.queue = o.Queue; s.queue == nil {
		q, closeQ, err := bus.OpenJobQueue(ctx, cfg, log, bus.Consumer{})
		if err != nil {
			return nil, err
		}
		s.queue, s.closeQ = q, closeQ
	}
	s.publish = s.queue
	if o.Route != nil {
		s.publish = o.Route(s.queue)
	}
	if s.jobLog, err = OpenJobLog(cfg); err != nil {
		return nil, err
	}
	if cfg.ExecDB.URL != "" {
		if s.execs, err = execdb.NewClient(cfg.ExecDB.URL, cfg.ExecDB.Token, log); err != nil {
			return nil, fmt.Errorf("execdb.url: %w", err)
		}
		if s.outbox, err = execdb.OpenOutbox(cfg.OutboxDir(), "trigger", log); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// queued tells the central server, through the outbox, of queued jobs.
func (s *Service) queued(jobs []contract.Job) error {
	evs := make([]contract.ExecutionEvent, len(jobs))
	for i, j := range jobs {
		evs[i] = contract.ExecutionEvent{UUID: j.UUID, Attempt: j.Attempt, State: contract.StateQueued, Time: j.Created,
			Item: j.Item, ItemType: j.ItemType, TaskName: j.TaskName, Arch: j.Arch, Priority: j.Priority, MsgID: j.MsgID, Rule: j.Rule}
	}
	return s.outbox.Emit(evs...)
}

func noClose() error { return nil }

// Run relays messages to jobs until ctx ends or the source is drained.
func (s *Service) Run(ctx context.Context) error {
	if s.opts.StatusAddr != "" {
		srv := status.New("trigger")
		s.AddStatus(srv)
		addr, err := srv.Listen(ctx, s.opts.StatusAddr, s.log)
		if err != nil {
			return err
		}
		s.log.Info("status listening", "url", "http://"+addr+"/status")
	}
	name, n := s.Rules()
	s.log.Info("trigger started", "rules", name, "count", n, "arches", s.setup.Options.Arches)
	observe := s.live.Observe
	if f := s.opts.OnOutcome; f != nil {
		observe = func(m MessageOutcome) { s.live.Observe(m); f(m) }
	}
	ro := RelayOptions{Log: s.log, JobLog: s.jobLog, Workers: s.opts.Workers, OnOutcome: observe, OnPublish: s.live.Published}
	if s.outbox != nil {
		ro.OnQueued = s.queued
		outboxDone := make(chan struct{})
		outboxCtx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
		go func() { defer close(outboxDone); s.outbox.Run(outboxCtx, s.execs.Post) }()
		// The outbox outlives the relay: what the last messages queued goes
		// out (for a few seconds more; the rest waits on disk).
		defer func() { stopOutbox(); <-outboxDone }()
	}
	st, err := RelayWith(ctx, s.src, s.trig, s.publish, ro)
	s.stats = st
	s.log.Info("trigger stopped", "messages", st.Messages, "jobs", st.Jobs, "ignored", st.Ignored, "rejected", st.Rejected, "duplicates", st.Duplicates)
	if err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	return nil
}

// Stats is what Run did, once it returned.
func (s *Service) Stats() Stats { return s.stats }

// Reload reads the rules (and the critpath file) again; on an error the
// rules in force stay.
func (s *Service) Reload() error {
	if err := s.setup.Reload(s.trig); err != nil {
		return err
	}
	name, n := s.Rules()
	s.log.Info("rules reloaded", "rules", name, "count", n)
	return nil
}

// Rules names the rules in force and counts them.
func (s *Service) Rules() (name string, count int) {
	r := s.trig.Rules()
	return r.Name, r.Len()
}

// Close releases what NewService opened.
func (s *Service) Close() error {
	if s.jobLog != nil {
		s.jobLog.Close()
	}
	if s.outbox != nil {
		s.outbox.Close()
	}
	s.closeQ()
	s.closeSrc()
	if s.setup != nil {
		return s.setup.Close()
	}
	return nil
}

// AddStatus adds the trigger's health check, metrics and /status section,
// with its broker's queues and counters.
func (s *Service) AddStatus(srv *status.Server) {
	amqpSrc, _ := s.src.(*bus.AMQPSource)
	if amqpSrc != nil {
		srv.AddCheck(status.Check{Name: "amqp source", Grace: s.opts.StatusGrace, Probe: func() error {
			if !amqpSrc.Connected() {
				return fmt.Errorf("not connected to the broker (queue %s); reconnecting", amqpSrc.QueueName())
			}
			return nil
		}})
	}
	srv.AddCheck(status.Check{Name: "job queue", Grace: s.opts.StatusGrace, Probe: func() error {
		if since, err := s.live.PublishFailing(); err != nil {
			return fmt.Errorf("publishing jobs fails since %s: %s", since.UTC().Format(time.RFC3339), bus.Truncate(err.Error(), bus.MaxReason))
		}
		return nil
	}})
	srv.AddMetrics(func() []status.Metric {
		st := s.live.Snapshot()
		out := []status.Metric{
			{Name: "taskotron_trigger_messages_total", Type: status.Counter, Help: "Bus messages done with, by outcome (jobs: its jobs, possibly none, are queued).",
				Samples: []status.Sample{
					{Labels: status.Labels("outcome", OutcomeJobs), Value: float64(st.Relayed)},
					{Labels: status.Labels("outcome", OutcomeIgnored), Value: float64(st.Ignored)},
					{Labels: status.Labels("outcome", OutcomeRejected), Value: float64(st.Rejected)},
					{Labels: status.Labels("outcome", OutcomeFused), Value: float64(st.Fused)},
					{Labels: status.Labels("outcome", OutcomeUnacked), Value: float64(st.Unacked)},
				}},
			status.One("taskotron_trigger_jobs_queued_total", status.Counter, "Jobs put on the job queue.", float64(st.Jobs)),
			status.One("taskotron_trigger_duplicates_total", status.Counter, "Jobs not queued again: the same job was queued within the dedup window.", float64(st.Duplicates)),
		}
		if !st.LastMessage.IsZero() {
			out = append(out, status.One("taskotron_trigger_last_message_timestamp_seconds", status.Gauge, "When the last message was done with.", float64(st.LastMessage.UnixNano())/1e9))
		}
		_, n := s.Rules()
		out = append(out, status.One("taskotron_trigger_rules", status.Gauge, "Rules in force.", float64(n)))
		if amqpSrc != nil {
			out = append(out, status.One("taskotron_amqp_source_connected", status.Gauge, "1 while the trigger is connected to the broker.", status.Flag(amqpSrc.Connected())),
				status.One("taskotron_amqp_source_connections_total", status.Counter, "Connections made to the broker (1 + reconnections).", float64(amqpSrc.Connections())))
		}
		return out
	})
	srv.AddSection("trigger", func() any {
		name, n := s.Rules()
		doc := map[string]any{"counters": s.live.Snapshot(), "rules": map[string]any{"name": name, "count": n}}
		if amqpSrc != nil {
			doc["amqp"] = map[string]any{"queue": amqpSrc.QueueName(), "connected": amqpSrc.Connected(),
				"connections": amqpSrc.Connections(), "stalls": amqpSrc.Stalls(), "ack_frames": amqpSrc.AckFrames()}
		}
		return doc
	})
	status.AddAMQPCounters(srv)
	if s.cfg.AMQP.URL != "" {
		status.AddBrokerQueues(srv, s.cfg)
	}
	if q, ok := s.queue.(*bus.DiskQueue); ok {
		status.AddDiskQueue(srv, q)
	}
	status.AddSpool(srv, s.cfg.Reporter.Spool)
}
