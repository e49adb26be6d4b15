package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/status"
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
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *workers < 0 {
		return usagef("--workers must be at least 1\n%s", triggerUsage)
	}
	if *workers == 0 {
		*workers = 8
		if len(paths) == 0 && g.cfg.AMQP.URL != "" && g.cfg.AMQP.Prefetch > 0 {
			// As many in flight as the broker hands over: a message's jobs
			// are confirmed while the next ones are handled.
			*workers = g.cfg.AMQP.Prefetch
		}
	}
	setup, err := trigger.FromConfig(ctx, g.cfg, *rulesPath, !*noDedup, g.log)
	if err != nil {
		return err
	}
	defer setup.Close()
	t := trigger.New(setup.Options)

	src, closeSrc, err := openMessageSource(ctx, g, paths)
	if err != nil {
		return err
	}
	defer closeSrc()
	q, closeQ, err := openJobQueue(ctx, g.cfg, g)
	if err != nil {
		return err
	}
	defer closeQ()
	jobLog, err := openJobLog(g.cfg)
	if err != nil {
		return err
	}
	defer jobLog.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := setup.Reload(t); err != nil {
				g.log.Error("rules not reloaded; the old rules stay", "err", err)
				continue
			}
			g.log.Info("rules reloaded", "rules", t.Rules().Name, "count", t.Rules().Len())
		}
	}()

	live := &trigger.Live{}
	if *statusAddr != "" {
		srv := status.New("trigger")
		amqpSrc, _ := src.(*bus.AMQPSource)
		status.AddTrigger(srv, status.TriggerParts{Live: live, Source: amqpSrc, Grace: statusGrace,
			Rules: func() (string, int) { r := t.Rules(); return r.Name, r.Len() }})
		status.AddAMQPCounters(srv)
		if g.cfg.AMQP.URL != "" {
			status.AddBrokerQueues(srv, g.cfg)
		}
		status.AddSpool(srv, g.cfg.Resolved().Reporter.Spool)
		addr, err := srv.Listen(ctx, *statusAddr, g.log)
		if err != nil {
			return err
		}
		g.log.Info("status listening", "url", "http://"+addr+"/status")
	}
	g.log.Info("trigger started", "rules", t.Rules().Name, "count", t.Rules().Len(), "arches", setup.Options.Arches)
	st, err := trigger.RelayWith(ctx, src, t, q, trigger.RelayOptions{Log: g.log, JobLog: jobLog, Workers: *workers, OnOutcome: live.Observe})
	g.log.Info("trigger stopped", "messages", st.Messages, "jobs", st.Jobs, "ignored", st.Ignored, "rejected", st.Rejected, "duplicates", st.Duplicates)
	if *summary {
		enc := json.NewEncoder(g.stdout)
		for _, o := range st.PerMessage {
			enc.Encode(o)
		}
	}
	return err
}

// openMessageSource is RabbitMQ when amqp.url is set and no paths are
// given, else the files (default trigger.messages); see bus.OpenSource.
func openMessageSource(ctx context.Context, g *globals, paths []string) (bus.Source, func(), error) {
	src, closeSrc, err := bus.OpenSource(ctx, g.cfg, g.stdin, paths, g.log)
	if err != nil {
		return nil, nil, err
	}
	return src, func() { closeSrc() }, nil
}

// openJobQueue is RabbitMQ when amqp.url is set, else the on-disk queue;
// see bus.OpenJobQueue.
func openJobQueue(ctx context.Context, cfg config.Config, g *globals) (bus.JobQueue, func(), error) {
	q, closeQ, err := bus.OpenJobQueue(ctx, cfg, g.log)
	if err != nil {
		return nil, nil, err
	}
	return q, func() { closeQ() }, nil
}

// openJobLog opens the JSON-lines file every scheduled job is appended to.
func openJobLog(cfg config.Config) (*os.File, error) { return trigger.OpenJobLog(cfg) }
