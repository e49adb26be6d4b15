package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
	"github.com/taskotron-go/taskotron/tap/taptest"
)

// BenchmarkReportTAP100MB is issue 17's own case: `taskotron report` on a
// 110 MB TAP13 stream of rpmlint-like tests with small YAML blocks, read,
// printed and posted a test at a time. Its goal is under 64 MB of memory
// and at least 10× the rate of Perl's TAP::Parser on the same file,
// measured in the same run. It is timed as a dry run (parse and print),
// reporting to a ResultsDB double over a socket that decodes and counts
// but stores nothing (with batches, and one POST a result as ResultsDB
// 2.2's API has it), and to our ResultsDB on SQLite in this process.
func BenchmarkReportTAP100MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "out.tap")
	tests, mb, err := taptest.WriteFile(path, 110<<20, taptest.ShortOutput)
	if err != nil {
		b.Fatal(err)
	}

	double, doubleURL := resultsdbtest.StartCounting(b, false)
	single, singleURL := resultsdbtest.StartCounting(b, true) // ResultsDB 2.2's API: one POST a result
	ours := resultsdbtest.Start(b)

	table := taptest.Table{Title: "taskotron report", Path: path, MB: mb, Tests: tests}
	run := func(name, label, url string) {
		args := []string{"report", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--checkname", "rpmlint", "--namespace", "scratch",
			"--uuid", fmt.Sprintf("bench-report-%d-%d", len(table.Rows), time.Now().UnixNano())}
		if url == "" {
			args = append(args, "--dry-run")
		}
		env := []string{"TASKOTRON_DATA_DIR=" + b.TempDir(), "TASKOTRON_RESULTSDB_URL=" + url}
		before := double.Requests.Load() + single.Requests.Load()
		out := &tail{}
		var errb bytes.Buffer
		runtime.GC()
		stop := taptest.PeakHeap()
		start := time.Now()
		var code int
		// Labelled so that a CPU profile can be narrowed to one row:
		// go tool pprof -tagfocus row=double.
		pprof.Do(context.Background(), pprof.Labels("row", label), func(ctx context.Context) {
			code = run(ctx, append(args, path), strings.NewReader(""), out, &errb, env)
		})
		took := time.Since(start)
		heap := stop()
		if code != 0 {
			b.Fatalf("%s: exit %d\n%s\n%s", name, code, out, errb.String())
		}
		requests := "-"
		switch url {
		case "":
		case ours:
			if !strings.Contains(out.String(), fmt.Sprintf("stored %d,", tests)) {
				b.Fatalf("%s: not every one of %d results stored:\n%s", name, tests, out)
			}
		default:
			requests = fmt.Sprint(double.Requests.Load() + single.Requests.Load() - before)
		}
		table.Rows = append(table.Rows, taptest.Row{Name: name, Label: label, Took: took, HeapMiB: heap, Requests: requests})
	}
	b.ResetTimer()
	for b.Loop() {
		table.Rows = table.Rows[:0]
		run("dry run (parse and print)", "dry", "")
		run("report to a double", "double", doubleURL)
		run("… one POST a result (2.2's API)", "single", singleURL)
		run("report to our ResultsDB (SQLite)", "ours", ours)
	}
	b.StopTimer()
	for _, d := range []*resultsdbtest.Counting{double, single} {
		if got := d.Results.Load(); got != int64(tests*b.N) {
			b.Fatalf("a double got %d results of %d", got, tests*b.N)
		}
	}

	table.PrintAndReport(b)
}

// tail keeps the last 4 KiB written to it: what report prints last (its
// summary) without the line it prints for every result.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 4<<10; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
