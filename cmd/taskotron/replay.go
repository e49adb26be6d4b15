package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/printable"
	"github.com/taskotron-go/taskotron/trigger"
)

func init() {
	register(command{
		name:    "replay",
		summary: "re-submit jobs from the job log, or publish fixture messages onto the bus",
		run:     runReplay,
	})
}

const replayUsage = "usage: taskotron replay jobs [--dry-run] JOBLOG.jsonl\n" +
	"       taskotron replay messages [--rate N] PATH...   (needs amqp.url)"

func runReplay(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("%s", replayUsage)
	}
	switch args[0] {
	case "jobs":
		return replayJobs(ctx, g, args[1:])
	case "messages":
		return replayMessages(ctx, g, args[1:])
	}
	return usagef("unknown replay kind %q\n%s", args[0], replayUsage)
}

func replayJobs(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("replay jobs")
	dryRun := fs.Bool("dry-run", false, "print the jobs, do not queue them")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("%s", replayUsage)
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return fmt.Errorf("job log: %w", err)
	}
	defer f.Close()
	jobs, err := trigger.ReadJobLog(f, rest[0])
	if err != nil {
		return err
	}
	jobs = trigger.Resubmit(jobs, time.Now())
	if *dryRun {
		for _, j := range jobs {
			fmt.Fprintf(g.stdout, "%s %s %s %s\n", printable.Line(j.TaskName), printable.Line(j.Arch), printable.Line(j.ItemType), printable.Line(j.Item))
		}
		return nil
	}
	q, closeQ, err := bus.OpenJobQueue(ctx, g.cfg, g.log, bus.Consumer{})
	if err != nil {
		return err
	}
	defer closeQ()
	bar := newProgress(g.stderr, "jobs", len(jobs))
	for i := 0; i < len(jobs); i += 50 {
		batch := jobs[i:min(i+50, len(jobs))]
		if err := q.Publish(ctx, batch...); err != nil {
			bar.done()
			return fmt.Errorf("%d of %d jobs queued: %w", i, len(jobs), err)
		}
		bar.add(len(batch))
	}
	bar.done()
	fmt.Fprintf(g.stdout, "%d jobs queued again\n", len(jobs))
	return nil
}

func replayMessages(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("replay messages")
	rate := fs.Float64("rate", 0, "messages per second (0: as fast as the broker confirms)")
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usagef("%s", replayUsage)
	}
	if g.cfg.AMQP.URL == "" {
		return usagef("replay messages publishes onto RabbitMQ: set amqp.url (TASKOTRON_AMQP_URL)")
	}
	// Read everything first: a bad file is reported before anything is sent.
	src, err := bus.OpenFiles(g.stdin, paths...)
	if err != nil {
		return err
	}
	var msgs []contract.Message
	for {
		d, err := src.Next(ctx)
		if errors.Is(err, bus.ErrDrained) {
			break
		}
		if err != nil {
			return err
		}
		if d.Err != nil {
			return d.Err
		}
		msgs = append(msgs, d.Message)
	}
	pub, err := bus.OpenAMQPPublisher(g.cfg.AMQP.URL, g.cfg.AMQP.Exchange)
	if err != nil {
		return err
	}
	defer pub.Close()
	bar := newProgress(g.stderr, "messages", len(msgs))
	var tick *time.Ticker
	batch := 100
	if *rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer tick.Stop()
		batch = 1
	}
	for i := 0; i < len(msgs); i += batch {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				bar.done()
				return ctx.Err()
			}
		}
		part := msgs[i:min(i+batch, len(msgs))]
		if err := pub.Publish(ctx, part...); err != nil {
			bar.done()
			return fmt.Errorf("%d of %d messages published: %w", i, len(msgs), err)
		}
		bar.add(len(part))
	}
	bar.done()
	fmt.Fprintf(g.stdout, "%d messages published to %s\n", len(msgs), g.cfg.AMQP.Exchange)
	return nil
}

// progress draws a one-line progress bar on a terminal-ish writer.
type progress struct {
	w          io.Writer
	what       string
	n, total   int
	lastRedraw time.Time
}

func newProgress(w io.Writer, what string, total int) *progress {
	p := &progress{w: w, what: what, total: total}
	p.draw()
	return p
}

func (p *progress) add(k int) {
	p.n += k
	if time.Since(p.lastRedraw) > 100*time.Millisecond || p.n == p.total {
		p.draw()
	}
}

func (p *progress) draw() {
	p.lastRedraw = time.Now()
	const width = 30
	filled := width
	if p.total > 0 {
		filled = p.n * width / p.total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.n, p.total, p.what)
}

func (p *progress) done() { fmt.Fprintln(p.w) }
