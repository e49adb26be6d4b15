package main

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
	tests, err := taptest.WriteFile(path, 110<<20, taptest.ShortOutput)
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(fi.Size()) / (1 << 20)

	double := &resultsdbtest.Counting{}
	srv := httptest.NewServer(double)
	defer srv.Close()
	single := &resultsdbtest.Counting{NoBatch: true}
	srvSingle := httptest.NewServer(single)
	defer srvSingle.Close()
	ours := resultsdbtest.Start(b)

	type row struct {
		name     string
		took     time.Duration
		heap     float64
		requests string
	}
	var rows []row
	run := func(name, label, url string) {
		args := []string{"report", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--checkname", "rpmlint", "--namespace", "scratch",
			"--uuid", fmt.Sprintf("bench-report-%d-%d", len(rows), time.Now().UnixNano())}
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
		rows = append(rows, row{name, took, heap, requests})
	}
	b.ResetTimer()
	for b.Loop() {
		rows = rows[:0]
		run("dry run (parse and print)", "dry", "")
		run("report to a double", "double", srv.URL)
		run("… one POST a result (2.2's API)", "single", srvSingle.URL)
		run("report to our ResultsDB (SQLite)", "ours", ours)
	}
	b.StopTimer()
	for _, d := range []*resultsdbtest.Counting{double, single} {
		if got := d.Results.Load(); got != int64(tests*b.N) {
			b.Fatalf("a double got %d results of %d", got, tests*b.N)
		}
	}

	perlTests, perlTook, err := taptest.PerlTAPParser(path)
	if err != nil {
		b.Fatal(err)
	}
	if perlTests != tests {
		b.Fatalf("TAP::Parser read %d tests, we wrote %d", perlTests, tests)
	}
	perlRate := mb / perlTook.Seconds()
	fmt.Printf("\n%-36s %9s %7s %11s %10s %9s\n", fmt.Sprintf("taskotron report, TAP13 %.0f MB, %d tests", mb, tests), "MB/s", "× Perl", "peak heap", "results/s", "requests")
	for _, r := range rows {
		rate := mb / r.took.Seconds()
		fmt.Printf("%-36s %9.1f %7.1f %7.1f MiB %10.0f %9s\n", r.name, rate, rate/perlRate, r.heap, float64(tests)/r.took.Seconds(), r.requests)
	}
	fmt.Printf("%-36s %9.1f %7s\n", "Perl TAP::Parser (same file)", perlRate, "1.0")
	fmt.Printf("%-36s %9s %7s %11s\n", "goal", "", "10", "< 64 MiB")
	b.ReportMetric(mb/rows[0].took.Seconds(), "dry-MB/s")
	b.ReportMetric(mb/rows[1].took.Seconds(), "double-MB/s")
	b.ReportMetric(mb/rows[2].took.Seconds(), "single-MB/s")
	b.ReportMetric(mb/rows[3].took.Seconds(), "ours-MB/s")
	b.ReportMetric(perlRate, "perl-MB/s")
	b.ReportMetric(max(rows[0].heap, rows[1].heap, rows[2].heap, rows[3].heap), "peak-heap-MiB")
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
