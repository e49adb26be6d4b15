package main

import (
	"context"
	"strings"

	"taskotron/bus"
	"taskotron/reporter"
	"taskotron/runner"
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
	grace := fs.Duration("grace", 0, "on SIGTERM, how long running jobs may go on before they are handed back (0: let them finish)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("usage: taskotron worker [--concurrency N] [--arches a,b] [--grace 5m]")
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
	if cfg.AMQP.URL != "" {
		var list []string
		for _, a := range strings.Split(*arches, ",") {
			if a = strings.TrimSpace(a); a != "" {
				list = append(list, a)
			}
		}
		q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: cfg.AMQP.URL, Exchange: cfg.AMQP.JobExchange, Queue: cfg.AMQP.JobQueue, Arches: list, Prefetch: opts.Prefetch(), Log: g.log})
		if err != nil {
			return err
		}
		defer q.Close()
		queue = q
	} else {
		q, err := bus.OpenDiskQueue(cfg.Path("queue"))
		if err != nil {
			return err
		}
		queue = q
	}
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		return err
	}
	rep, err := reporter.New(reporter.OptionsFromConfig(cfg, g.log))
	if err != nil {
		return err
	}
	opts.Queue, opts.Reporter = queue, rep
	opts.Runner = runner.New(runner.Options{Config: cfg, Checkout: co, Log: g.log})
	return runner.NewWorker(opts).Run(ctx)
}
