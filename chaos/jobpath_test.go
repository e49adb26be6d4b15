package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkJobPath runs the production shape on this machine as processes
// (taskotron trigger, RabbitMQ, taskotron worker --concurrency 8,
// taskotron resultsdb serve) with the shell task nvr-format, and prints
// the highest rate held for a step without a growing backlog, the latency
// from publish to result shown in the API at 50 messages/s, and the roles'
// CPU per job beside the task's (goals, issue 17: 200/s, p99 ≤ 100 ms,
// 3 ms). Knobs, in the environment: JOBPATH_STEP (how long each rate is
// held, default 60s; 10s for a quick look), JOBPATH_STORES (sqlite,
// postgres or both, comma-separated; default sqlite), JOBPATH_START (the
// first rate, default 25), JOBPATH_MAX_STEPS (default 7), JOBPATH_PROFILE,
// JOBPATH_TRIGGER_PROFILE and JOBPATH_RESULTSDB_PROFILE (files for the
// worker's, the trigger's and the results server's CPU profiles),
// JOBPATH_WORK_DIR (the worker's runner.work_dir, say on a tmpfs), JOBPATH_ROOT (the checkout whose
// taskotron is measured, default this one: an older commit's, to compare),
// JOBPATH_V=1 (log progress).
func BenchmarkJobPath(b *testing.B) {
	step, err := time.ParseDuration(envOr("JOBPATH_STEP", "60s"))
	if err != nil {
		b.Fatalf("JOBPATH_STEP: %v", err)
	}
	start, err := strconv.ParseFloat(envOr("JOBPATH_START", "25"), 64)
	if err != nil {
		b.Fatalf("JOBPATH_START: %v", err)
	}
	steps, err := strconv.Atoi(envOr("JOBPATH_MAX_STEPS", "7"))
	if err != nil {
		b.Fatalf("JOBPATH_MAX_STEPS: %v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("JOBPATH_V") != "" {
		level = slog.LevelInfo
	}
	for b.Loop() {
		for _, store := range strings.Split(envOr("JOBPATH_STORES", "sqlite"), ",") {
			rep, err := RunJobPath(b.Context(), JobPathConfig{
				Root:             envOr("JOBPATH_ROOT", testRootB(b)),
				AMQPURL:          envOr("TASKOTRON_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"),
				PostgresURL:      envOr("RESULTSDB_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"),
				Store:            strings.TrimSpace(store),
				Step:             step,
				Start:            start,
				MaxSteps:         steps,
				Profile:          os.Getenv("JOBPATH_PROFILE"),
				TriggerProfile:   os.Getenv("JOBPATH_TRIGGER_PROFILE"),
				ResultsDBProfile: os.Getenv("JOBPATH_RESULTSDB_PROFILE"),
				WorkDir:          os.Getenv("JOBPATH_WORK_DIR"),
				Log:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
			})
			if err != nil {
				b.Fatalf("job path on %s: %v", store, err)
			}
			rep.Table(os.Stdout)
			if rep.Best != nil {
				b.ReportMetric(rep.Best.Rate, store+"-sustained-msg/s")
				b.ReportMetric(ms(rep.Best.PipelineCPU()), store+"-pipeline-cpu-ms/job")
			}
			b.ReportMetric(ms(quantile(rep.Latency, 0.5)), store+"-p50-ms@50/s")
			b.ReportMetric(ms(quantile(rep.Latency, 0.99)), store+"-p99-ms@50/s")
		}
	}
}

func testRootB(b *testing.B) string {
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	return root
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Table prints the report: the figures against the goals, then
// each step of the search.
func (r *JobPathReport) Table(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\njob path on %s: trigger, RabbitMQ, 1 worker × %d, resultsdb serve, as processes; task nvr-format; steps of %s; %s in all; load average %s at the start (%d cores)\n\n",
		c.Store, c.Concurrency, c.Step, r.Elapsed.Round(time.Second), r.Load, runtime.NumCPU())
	best := "none held"
	cpu, child := "-", "-"
	if b := r.Best; b != nil {
		best = fmt.Sprintf("%.0f msg/s", b.Rate)
		cpu = fmt.Sprintf("%.2f ms at %.0f/s (%s)", ms(b.PipelineCPU()), b.Rate, roles(b.RoleCPU))
		child = fmt.Sprintf("%.2f ms", ms(b.ChildCPU))
	}
	l := r.Latency
	rows := [][3]string{
		{fmt.Sprintf("highest rate held for %s without a growing backlog", c.Step), best, "≥ 200 msg/s on 2 cores"},
		{fmt.Sprintf("publish → result in the API at %.0f/s: p50, p99 (%d jobs, polled every %s)", c.LatencyRate, len(l), r.PollEvery),
			latencyCell(l, r.LatencyStep.Unseen), "p99 ≤ 100 ms"},
		{"pipeline CPU per job (the roles' own user+sys)", cpu, "≤ 3 ms"},
		{"task CPU per job (the worker's children: bwrap and the task)", child, ""},
		{"the task's script alone, measured beside: plain, in bwrap", fmt.Sprintf("%.2f ms, %.2f ms", ms(r.TaskAlone), ms(r.TaskSandboxed)), ""},
	}
	fmt.Fprintf(w, "| what | measured | goal |\n|---|---|---|\n")
	for _, row := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", row[0], row[1], row[2])
	}
	fmt.Fprintf(w, "\n| rate asked | sent/s | backlog at end (growth) | drained in | pipeline CPU/job | children CPU/job | RabbitMQ, harness CPU/job | machine CPU/job | machine busy | held |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range append(slices.Clone(r.Steps), r.LatencyStep) {
		held := "yes"
		if !s.Sustained {
			held = "no: " + s.Why
		}
		fmt.Fprintf(w, "| %.0f | %.0f | %d (%+d) | %s | %.2f ms | %.2f ms | %.2f ms, %.2f ms | %.2f ms | %.0f%% | %s |\n", s.Rate, s.SentRate, s.Backlog, s.Growth,
			s.Drain.Round(100*time.Millisecond), ms(s.PipelineCPU()), ms(s.ChildCPU), ms(s.BrokerCPU), ms(s.HarnessCPU), ms(s.MachineCPU), 100*s.Busy, held)
	}
	fmt.Fprintln(w, "(the last row is the latency step, polled every 10 ms: its CPU includes the polls)")
	fmt.Fprintln(w)
}

// latencyCell shows p50 and p99; with jobs not seen by the end, as lower
// bounds.
func latencyCell(l []time.Duration, unseen int) string {
	out := fmt.Sprintf("%.0f ms, %.0f ms", ms(quantile(l, 0.5)), ms(quantile(l, 0.99)))
	if unseen > 0 {
		out = fmt.Sprintf("≥ %s (%d results not shown by the end)", out, unseen)
	}
	return out
}

func roles(m map[string]time.Duration) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, ms(m[k])))
	}
	return strings.Join(parts, ", ")
}
