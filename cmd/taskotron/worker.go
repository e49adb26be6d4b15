package main

import (
	"context"
	"strings"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
	"github.com/taskotron-go/taskotron/status"
)

func init() {
	register(command{
		name:    "worker",
		summary: "take jobs from the queue (RabbitMQ when amqp.url is set, else on disk), run them, report results",
		run:     runWorker,
	})
}

func runWorker(ctx context.Context, g *globals, args []string) error {
	cfg := g.cfg
	fs := newFlags("worker")
	concurrency := fs.Int("concurrency", cfg.Runner.Concurrency, "jobs run at once")
	arches := fs.String("arches", strings.Join(append(append([]string{}, cfg.Trigger.Arches...), "noarch"), ","), "job queues to take from, by arch (RabbitMQ)")
	statusAddr := fs.String("status", cfg.Status.Listen, "serve /healthz, /metrics, /status and /debug/vars on this address (default: status.listen; empty: off)")
	grace := fs.Duration("grace", 0, "on SIGTERM, how long running jobs may go on before they are handed back (0: let them finish)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("usage: taskotron worker [--concurrency N] [--arches a,b] [--grace 5m] [--status ADDR]")
	}
	if *concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	grace0 := *grace
	if grace0 < 0 {
		grace0 = -1
	}
	opts := runner.WorkerOptions{
		Log: g.log, Concurrency: *concurrency, MaxWaiting: cfg.Runner.MaxWaiting, MaxAttempts: cfg.Runner.MaxAttempts, ShutdownGrace: grace0,
	}
	var queue bus.JobQueue
	var amqpQueue *bus.AMQPJobQueue
	var diskQueue *bus.DiskQueue
	var list []string
	if cfg.AMQP.URL != "" {
		for _, a := range strings.Split(*arches, ",") {
			if a = strings.TrimSpace(a); a != "" {
				list = append(list, a)
			}
		}
		q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: cfg.AMQP.URL, Exchange: cfg.AMQP.JobExchange, Queue: cfg.AMQP.JobQueue, Arches: list, Prefetch: opts.Prefetch(), Running: *concurrency, Log: g.log})
		if err != nil {
			return err
		}
		defer q.Close()
		queue, amqpQueue = q, q
	} else {
		q, err := bus.OpenDiskQueue(cfg.QueueDir())
		if err != nil {
			return err
		}
		queue, diskQueue = q, q
	}
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		return err
	}
	rep, err := reporter.New(reporter.OptionsFromConfig(cfg, g.log))
	if err != nil {
		return err
	}
	opts.Runner = runner.New(runner.Options{Config: cfg, Checkout: co, Log: g.log})
	opts.Queue, opts.Reporter = queue, rep
	if *statusAddr != "" {
		tr := runner.NewTracker(opts.Runner)
		opts.Queue, opts.Reporter, opts.OnDone, opts.OnRetryWait = tr.Queue(queue), tr.Reporter(rep), tr.Done, tr.RetryWait
		srv := status.New("worker")
		status.AddWorker(srv, status.WorkerParts{Tracker: tr, Concurrency: *concurrency, AMQP: amqpQueue, URL: cfg.AMQP.URL, Grace: statusGrace})
		status.AddAMQPCounters(srv)
		if amqpQueue != nil {
			status.AddBrokerQueues(srv, cfg, list...)
		} else {
			status.AddDiskQueue(srv, diskQueue)
		}
		status.AddSpool(srv, cfg.Resolved().Reporter.Spool)
		addr, err := srv.Listen(ctx, *statusAddr, g.log)
		if err != nil {
			return err
		}
		g.log.Info("status listening", "url", "http://"+addr+"/status")
	}
	return runner.NewWorker(opts).Run(ctx)
}
