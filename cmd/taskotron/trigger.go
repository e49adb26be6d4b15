package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/labs"
	"github.com/taskotron-go/taskotron/trigger"
)

// statusGrace is how long a role's broker may be away before /healthz
// says 503: a broker restart of a few seconds is not an outage.
var statusGrace = 10 * time.Second

func init() {
	register(command{
		name:    "trigger",
		summary: "turn bus messages (RabbitMQ, or files) into jobs on the job queue",
		run:     runTrigger,
	})
}

const triggerUsage = "usage: taskotron trigger [--rules FILE] [--workers N] [--no-dedup] [--summary] [--status ADDR] [MESSAGES...]\n" +
	"  with amqp.url set and no MESSAGES, consumes from RabbitMQ until stopped; SIGHUP reloads the rules"

func runTrigger(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("trigger")
	rulesPath := fs.String("rules", "", "trigger_rules.yml (default: trigger.rules, or the built-in rules)")
	workers := fs.Int("workers", 0, "messages in flight at once (default: amqp.prefetch with RabbitMQ, 8 for files)")
	noDedup := fs.Bool("no-dedup", false, "do not remember messages and jobs (state_db)")
	summary := fs.Bool("summary", false, "print what became of each message as JSON lines at the end")
	statusAddr := fs.String("status", g.cfg.Status.Listen, "serve /healthz, /metrics, /status and /debug/vars on this address (default: status.listen; empty: off)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the trigger to this file, from start until it stops (go tool pprof)")
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *workers < 0 {
		return usagef("--workers must be at least 1\n%s", triggerUsage)
	}
	trigger.TuneGC()
	route, err := labs.Routing(g.cfg, g.log)
	if err != nil {
		return usagef("%v", err)
	}
	svc, err := trigger.NewService(ctx, g.cfg, g.log, trigger.ServiceOptions{
		Route:     route,
		RulesPath: *rulesPath, Workers: *workers, NoDedup: *noDedup, Messages: paths, Stdin: g.stdin,
		StatusAddr: *statusAddr, StatusGrace: statusGrace,
	})
	if err != nil {
		return err
	}
	defer svc.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := svc.Reload(); err != nil {
				g.log.Error("rules not reloaded; the old rules stay", "err", err)
			}
		}
	}()

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	err = svc.Run(ctx)
	if *summary {
		enc := json.NewEncoder(g.stdout)
		for _, o := range svc.Stats().PerMessage {
			enc.Encode(o)
		}
	}
	return err
}
