package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"taskotron/bus"
	"taskotron/config"
	"taskotron/trigger"
)

func init() {
	register(command{
		name:    "trigger",
		summary: "turn bus messages (RabbitMQ, or files) into jobs on the job queue",
		run:     runTrigger,
	})
}

const triggerUsage = "usage: taskotron trigger [--rules FILE] [--workers N] [--no-dedup] [--summary] [MESSAGES...]\n" +
	"  with amqp.url set and no MESSAGES, consumes from RabbitMQ until stopped; SIGHUP reloads the rules"

func runTrigger(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("trigger")
	rulesPath := fs.String("rules", "", "trigger_rules.yml (default: trigger.rules, or the built-in rules)")
	workers := fs.Int("workers", 0, "messages in flight at once (default: amqp.prefetch with RabbitMQ, 8 for files)")
	noDedup := fs.Bool("no-dedup", false, "do not remember messages and jobs (state_db)")
	summary := fs.Bool("summary", false, "print what became of each message as JSON lines at the end")
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

	g.log.Info("trigger started", "rules", t.Rules().Name, "count", t.Rules().Len(), "arches", setup.Options.Arches)
	st, err := trigger.RelayWith(ctx, src, t, q, trigger.RelayOptions{Log: g.log, JobLog: jobLog, Workers: *workers})
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
// given, else the files (default trigger.messages).
func openMessageSource(ctx context.Context, g *globals, paths []string) (bus.Source, func(), error) {
	cfg := g.cfg
	if len(paths) == 0 && cfg.AMQP.URL != "" {
		src, err := bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{
			URL: cfg.AMQP.URL, Exchange: cfg.AMQP.Exchange, Queue: cfg.AMQP.Queue, Topics: cfg.AMQP.Topics,
			Prefetch: cfg.AMQP.Prefetch, DeadLetterQueue: cfg.AMQP.DeadLetterQueue, Watchdog: cfg.AMQP.Watchdog, Log: g.log,
		})
		if err != nil {
			return nil, nil, err
		}
		return src, func() { src.Close() }, nil
	}
	if len(paths) == 0 {
		paths = []string{cfg.Trigger.Messages}
	}
	src, err := bus.OpenFiles(g.stdin, paths...)
	if err != nil {
		return nil, nil, err
	}
	dead := cfg.Path("deadletter.jsonl")
	src.OnReject = func(origin string, raw []byte, reason string) error {
		return appendDeadLetter(dead, origin, raw, reason)
	}
	return src, func() {}, nil
}

// appendDeadLetter keeps a rejected file message with its reason.
func appendDeadLetter(path, origin string, raw []byte, reason string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	line, _ := json.Marshal(map[string]any{"origin": origin, "reason": reason, "raw": string(raw), "at": time.Now().UTC()})
	_, err = f.Write(append(line, '\n'))
	return err
}

// openJobQueue is RabbitMQ when amqp.url is set, else the on-disk queue.
func openJobQueue(ctx context.Context, cfg config.Config, g *globals) (bus.JobQueue, func(), error) {
	if cfg.AMQP.URL != "" {
		q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: cfg.AMQP.URL, Exchange: cfg.AMQP.JobExchange, Queue: cfg.AMQP.JobQueue, Log: g.log})
		if err != nil {
			return nil, nil, err
		}
		return q, func() { q.Close() }, nil
	}
	q, err := bus.OpenDiskQueue(cfg.Path("queue"))
	if err != nil {
		return nil, nil, err
	}
	return q, func() {}, nil
}

// openJobLog opens the JSON-lines file every scheduled job is appended to.
func openJobLog(cfg config.Config) (*os.File, error) {
	path := cfg.Trigger.JobLog
	if path == "" {
		path = "jobs.jsonl"
	}
	path = cfg.Path(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("job log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("job log %s: %w", path, err)
	}
	return f, nil
}
