package runtask

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
	"github.com/taskotron-go/taskotron/tap/taptest"
)

// BenchmarkRuntaskTAP100MB runs a task whose output is a 100 MB TAP13 file
// (rpmlint-like tests with YAML blocks) as a task author does: runtask's
// runner, then its reporter, over a socket. Issue 17's goal is under 64 MB
// of memory and at least 10× the rate of Perl's TAP::Parser on the same
// file, measured in the same run. The run is timed alone (--no-report)
// and whole, reporting to a ResultsDB double that stores nothing (what
// the runner and reporter cost) and to our ResultsDB on SQLite (what a
// task author gets).
func BenchmarkRuntaskTAP100MB(b *testing.B) {
	taskDir := b.TempDir()
	tests, mb, err := taptest.WriteFile(filepath.Join(taskDir, "out.tap"), 100<<20, taptest.LongOutput(24))
	if err != nil {
		b.Fatal(err)
	}
	formula := "name: bigtap\nnamespace: scratch\nactions:\n  - name: report\n    resultsdb:\n      file: out.tap\n"
	if err := os.WriteFile(filepath.Join(taskDir, "runtask.yml"), []byte(formula), 0o644); err != nil {
		b.Fatal(err)
	}

	double, doubleURL := resultsdbtest.StartCounting(b, false)
	single, singleURL := resultsdbtest.StartCounting(b, true) // ResultsDB 2.2's API: one POST a result
	ours := resultsdbtest.Start(b) + "/api/v2.0"

	table := taptest.Table{Title: "runtask", Path: filepath.Join(taskDir, "out.tap"), MB: mb, Tests: tests}
	run := func(name, label, url string, report bool) {
		cfg := config.Default()
		cfg.DataDir = b.TempDir()
		cfg.ResultsDB.URL = url
		args := []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", fmt.Sprintf("bench-%d", len(table.Rows))}
		if !report {
			args = append(args, "--no-report")
		}
		before := double.Requests.Load() + single.Requests.Load()
		runtime.GC()
		stop := taptest.PeakHeap()
		var out, errb bytes.Buffer
		start := time.Now()
		var code int
		// Labelled so that a CPU profile can be narrowed to one row:
		// go tool pprof -tagfocus row=double.
		pprof.Do(context.Background(), pprof.Labels("row", label), func(ctx context.Context) {
			code = Run(ctx, append(args, taskDir), cfg, nil, &out, &errb)
		})
		took := time.Since(start)
		peak := stop()
		if code != 0 {
			b.Fatalf("%s: exit %d\n%s\n%s", name, code, out.String(), errb.String())
		}
		if report && !strings.Contains(out.String(), fmt.Sprintf("(%d)", tests)) {
			b.Fatalf("%s: not every one of %d results stored:\n%s", name, tests, out.String())
		}
		requests := fmt.Sprint(double.Requests.Load() + single.Requests.Load() - before)
		if url == ours {
			requests = "-"
		}
		table.Rows = append(table.Rows, taptest.Row{Name: name, Label: label, Took: took, HeapMiB: peak, Requests: requests})
	}
	b.ResetTimer()
	for b.Loop() {
		table.Rows = table.Rows[:0]
		run("run alone (--no-report)", "alone", doubleURL, false)
		run("run + report to a double", "double", doubleURL, true)
		run("… one POST a result (2.2's API)", "single", singleURL, true)
		run("run + report to our ResultsDB", "ours", ours, true)
	}
	b.StopTimer()
	for _, d := range []*resultsdbtest.Counting{double, single} {
		if got := d.Results.Load(); got != int64(tests*b.N) {
			b.Fatalf("a double got %d results of %d", got, tests*b.N)
		}
	}

	table.PrintAndReport(b)
}
