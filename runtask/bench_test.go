package runtask

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
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
	tests, err := taptest.WriteFile(filepath.Join(taskDir, "out.tap"), 100<<20, taptest.LongOutput(24))
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(taskDir, "out.tap"))
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(fi.Size()) / (1 << 20)
	formula := "name: bigtap\nnamespace: scratch\nactions:\n  - name: report\n    resultsdb:\n      file: out.tap\n"
	if err := os.WriteFile(filepath.Join(taskDir, "runtask.yml"), []byte(formula), 0o644); err != nil {
		b.Fatal(err)
	}

	double := &resultsdbtest.Counting{}
	srv := httptest.NewServer(double)
	defer srv.Close()
	// ResultsDB 2.2's API: one POST a result, no batches.
	single := &resultsdbtest.Counting{NoBatch: true}
	srvSingle := httptest.NewServer(single)
	defer srvSingle.Close()
	ours := resultsdbtest.Start(b) + "/api/v2.0"

	type row struct {
		name  string
		took  time.Duration
		heap  float64
		posts int64 // requests that stored results; -1: not counted
	}
	var rows []row
	run := func(name, label, url string, report bool) {
		cfg := config.Default()
		cfg.DataDir = b.TempDir()
		cfg.ResultsDB.URL = url
		args := []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", fmt.Sprintf("bench-%d", len(rows))}
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
		posts := double.Requests.Load() + single.Requests.Load() - before
		if url == ours {
			posts = -1
		}
		rows = append(rows, row{name, took, peak, posts})
	}
	b.ResetTimer()
	for b.Loop() {
		rows = rows[:0]
		run("run alone (--no-report)", "alone", srv.URL, false)
		run("run + report to a double", "double", srv.URL, true)
		run("… one POST a result (2.2's API)", "single", srvSingle.URL, true)
		run("run + report to our ResultsDB", "ours", ours, true)
	}
	b.StopTimer()
	for _, d := range []*resultsdbtest.Counting{double, single} {
		if got := d.Results.Load(); got != int64(tests*b.N) {
			b.Fatalf("a double got %d results of %d", got, tests*b.N)
		}
	}

	perlTests, perlTook, err := taptest.PerlTAPParser(filepath.Join(taskDir, "out.tap"))
	if err != nil {
		b.Fatal(err)
	}
	if perlTests != tests {
		b.Fatalf("TAP::Parser read %d tests, we wrote %d", perlTests, tests)
	}
	perlRate := mb / perlTook.Seconds()
	fmt.Printf("\n%-34s %9s %7s %11s %10s %9s\n", fmt.Sprintf("runtask, TAP13 %.0f MB, %d tests", mb, tests), "MB/s", "× Perl", "peak heap", "results/s", "requests")
	for _, r := range rows {
		rate := mb / r.took.Seconds()
		requests := fmt.Sprint(r.posts)
		if r.posts < 0 {
			requests = "-"
		}
		fmt.Printf("%-34s %9.1f %7.1f %7.1f MiB %10.0f %9s\n", r.name, rate, rate/perlRate, r.heap, float64(tests)/r.took.Seconds(), requests)
	}
	fmt.Printf("%-34s %9.1f %7s %11s\n", "Perl TAP::Parser (same file)", perlRate, "1.0", "")
	fmt.Printf("%-34s %9s %7s %11s\n", "goal", "", "10", "< 64 MiB")
	b.ReportMetric(mb/rows[0].took.Seconds(), "run-MB/s")
	b.ReportMetric(mb/rows[1].took.Seconds(), "double-MB/s")
	b.ReportMetric(mb/rows[2].took.Seconds(), "single-MB/s")
	b.ReportMetric(mb/rows[3].took.Seconds(), "ours-MB/s")
	b.ReportMetric(perlRate, "perl-MB/s")
	b.ReportMetric(max(rows[0].heap, rows[1].heap, rows[2].heap, rows[3].heap), "peak-heap-MiB")
}
