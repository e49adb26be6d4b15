package main

import (
	"context"
	"strings"

	"github.com/taskotron-go/taskotron/sandbox"
	"github.com/taskotron-go/taskotron/worker"
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
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the worker to this file, from start until it stops (go tool pprof)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("usage: taskotron worker [--concurrency N] [--arches a,b] [--grace 5m] [--status ADDR] [--cpu-profile FILE]")
	}
	if *concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	// A worker that could not run a single task refuses to start.
	if err := sandbox.Check(cfg.Runner.Sandbox, g.configPath); err != nil {
		return usagef("%v", err)
	}
	var list []string
	for _, a := range strings.Split(*arches, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	svc, err := worker.NewService(ctx, cfg, g.log, worker.ServiceOptions{
		Concurrency: *concurrency, Arches: list, Grace: *grace, StatusAddr: *statusAddr, StatusGrace: statusGrace,
	})
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	return svc.Run(ctx)
}
