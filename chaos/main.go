// Command chaos is the chaos soak (`make chaos`): it runs the production
// shape on this machine — `taskotron trigger`, several `taskotron worker`
// processes on RabbitMQ and `taskotron resultsdb serve` on a fresh
// PostgreSQL schema, all built from this checkout — under a stream of
// real-shaped bus messages (testdata/messages and fixtures/messages, each
// made unique) and malformed ones, while it SIGKILLs workers, restarts the
// broker and takes ResultsDB away. At the end it prints what it sent, the
// jobs the rules expect, the jobs with exactly one result set, those
// missing, duplicated results, the dead-lettered messages and how long
// the backlog took to drain; it exits 1 when anything was lost, doubled or
// not set aside. Its AMQP names are the run's own and deleted at the end.
//
// BenchmarkJobPath (jobpath.go) runs the same roles on the same harness,
// without faults, to measure the job path: the highest rate held, the
// latency from publish to result, the CPU per job.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c Config
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Messages, "messages", 1200, "real-shaped messages to send")
	fs.IntVar(&c.Malformed, "malformed", 20, "malformed messages among them (not JSON, a JSON array, a body of the wrong shape, a 5 MiB name)")
	fs.DurationVar(&c.Duration, "duration", 90*time.Second, "how long the stream (and the faults) last")
	fs.IntVar(&c.Workers, "workers", 3, "worker processes")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "jobs each worker runs at once")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 0, "the workers' runner.max_attempts (0: its default)")
	fs.DurationVar(&c.TaskTime, "task-time", 1500*time.Millisecond, "the longest a stand-in task works")
	fs.DurationVar(&c.KillEvery, "kill-every", 6*time.Second, "mean time between SIGKILLs of a worker (negative: none)")
	fs.IntVar(&c.BrokerRestarts, "broker-restarts", 2, "RabbitMQ restarts (rabbitmqctl stop_app/start_app; they break every other client of the broker: 0 while others run tests)")
	fs.DurationVar(&c.BrokerDown, "broker-down", 2*time.Second, "how long RabbitMQ stays stopped")
	fs.IntVar(&c.ResultsDBStops, "resultsdb-stops", 2, "times ResultsDB is taken away (SIGSTOP, then SIGKILL and restart, in turn)")
	fs.DurationVar(&c.ResultsDBDown, "resultsdb-down", 6*time.Second, "how long ResultsDB stays away")
	fs.IntVar(&c.TriggerKills, "trigger-kills", 1, "times the trigger is SIGKILLed (and started again a second later)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 5*time.Minute, "how long the backlog may take to drain")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (0: a new one, printed)")
	fs.BoolVar(&c.Race, "race", false, "build the roles with the race detector (a race ends the process and fails the soak)")
	keep := fs.Bool("keep", false, "keep the run's folder (logs, data) even when the soak passes")
	verbose := fs.Bool("v", false, "log progress")
	fs.StringVar(&c.AMQPURL, "amqp", envOr("TASKOTRON_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ")
	fs.StringVar(&c.PostgresURL, "postgres", envOr("RESULTSDB_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL database the run makes a schema in")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 1
	}
	c.Root = root
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	c.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, c)
	if rep != nil {
		rep.Table(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		if rep != nil {
			fmt.Fprintf(stderr, "chaos: logs in %s\n", rep.Dir)
		}
		return 1
	}
	if f := rep.Failures(); len(f) > 0 {
		for _, line := range f {
			fmt.Fprintf(stderr, "chaos: FAIL: %s\n", line)
		}
		fmt.Fprintf(stderr, "chaos: logs in %s (seed %d)\n", rep.Dir, rep.Config.Seed)
		return 1
	}
	if *keep {
		fmt.Fprintf(stderr, "chaos: logs in %s\n", rep.Dir)
	} else {
		os.RemoveAll(rep.Dir)
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// moduleRoot is the checkout this program runs in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the taskotron module (run it from the checkout)")
	}
	return filepath.Dir(mod), nil
}

// Table prints the report as a Markdown table.
func (r Report) Table(w io.Writer) {
	c := r.Config
	t := r.Results
	fmt.Fprintf(w, "chaos soak: seed %d, %d workers × %d jobs, %d+%d messages over %s, tasks up to %s\n",
		c.Seed, c.Workers, c.Concurrency, c.Messages, c.Malformed, c.Duration, c.TaskTime)
	fmt.Fprintf(w, "faults: %d worker SIGKILLs, %d trigger SIGKILLs; %d broker restarts %s; ResultsDB SIGSTOP %s, SIGKILL+restart %s\n\n",
		r.WorkerKills, r.TriggerKills, len(r.BrokerOutages), durations(r.BrokerOutages), durations(r.ResultsDBPauses), durations(r.ResultsDBKills))
	rows := [][2]string{
		{"messages sent", fmt.Sprintf("%d (%d real-shaped, %d malformed; %d sends repeated)", r.Sent, r.Real, r.Malformed, r.PublishRetries)},
		{"jobs expected (rules)", fmt.Sprint(t.Expected)},
		{"jobs with exactly one result set", fmt.Sprint(t.OneSet)},
		{"jobs missing", fmt.Sprint(t.Missing)},
		{"duplicated results", fmt.Sprint(t.Duplicated)},
		{"results of unexpected jobs", fmt.Sprint(t.Unexpected)},
		{"malformed dead-lettered with a reason", fmt.Sprintf("%d of %d", r.MalformedDeadLettered, r.Malformed)},
		{"real messages dead-lettered", fmt.Sprint(len(r.OtherDeadLettered))},
		{"left on the queues (jobs, messages)", fmt.Sprintf("%d, %d", r.JobsLeft, r.MessagesLeft)},
		{"roles exiting on their own", fmt.Sprintf("%d (starts that failed at once, started again: %d)", exits(r.UnexpectedExits), r.FailedStarts)},
		{"outcomes", outcomes(t.Outcomes)},
	}
	if l := r.Latencies; len(l) > 0 {
		rows = append(rows, [2]string{"message to result (median, 99th, max)", fmt.Sprintf("%s, %s, %s",
			quantile(l, 0.5).Round(100*time.Millisecond), quantile(l, 0.99).Round(100*time.Millisecond), l[len(l)-1].Round(100*time.Millisecond))})
	}
	if r.Drained {
		rows = append(rows, [2]string{"backlog drained in", r.Drain.Round(100 * time.Millisecond).String()})
	} else {
		rows = append(rows, [2]string{"backlog drained in", fmt.Sprintf("not within %s", c.DrainTimeout)})
	}
	rows = append(rows, [2]string{"whole run", r.Elapsed.Round(time.Second).String()})
	width := 0
	for _, row := range rows {
		width = max(width, len(row[0]))
	}
	fmt.Fprintf(w, "| %-*s | %s |\n|%s|---|\n", width, "what", "count", strings.Repeat("-", width+2))
	for _, row := range rows {
		fmt.Fprintf(w, "| %-*s | %s |\n", width, row[0], row[1])
	}
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "(none)"
	}
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(100*time.Millisecond).String())
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func exits(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func outcomes(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}
