package runtask

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
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
	tests := writeTAP(b, filepath.Join(taskDir, "out.tap"), 100<<20)
	fi, err := os.Stat(filepath.Join(taskDir, "out.tap"))
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(fi.Size()) / (1 << 20)
	formula := "name: bigtap\nnamespace: scratch\nactions:\n  - name: report\n    resultsdb:\n      file: out.tap\n"
	if err := os.WriteFile(filepath.Join(taskDir, "runtask.yml"), []byte(formula), 0o644); err != nil {
		b.Fatal(err)
	}

	double := &countingResultsDB{}
	srv := httptest.NewServer(double)
	defer srv.Close()
	// ResultsDB 2.2's API: one POST a result, no batches.
	single := &countingResultsDB{noBatch: true}
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
	run := func(name, url string, report bool) {
		cfg := config.Default()
		cfg.DataDir = b.TempDir()
		cfg.ResultsDB.URL = url
		args := []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", fmt.Sprintf("bench-%d", len(rows))}
		if !report {
			args = append(args, "--no-report")
		}
		before := double.requests.Load() + single.requests.Load()
		runtime.GC()
		stop := samplePeakHeap()
		var out, errb bytes.Buffer
		start := time.Now()
		code := Run(context.Background(), append(args, taskDir), cfg, nil, &out, &errb)
		took := time.Since(start)
		peak := stop()
		if code != 0 {
			b.Fatalf("%s: exit %d\n%s\n%s", name, code, out.String(), errb.String())
		}
		if report && !strings.Contains(out.String(), fmt.Sprintf("(%d)", tests)) {
			b.Fatalf("%s: not every one of %d results stored:\n%s", name, tests, out.String())
		}
		posts := double.requests.Load() + single.requests.Load() - before
		if url == ours {
			posts = -1
		}
		rows = append(rows, row{name, took, peak, posts})
	}
	b.ResetTimer()
	for b.Loop() {
		rows = rows[:0]
		run("run alone (--no-report)", srv.URL, false)
		run("run + report to a double", srv.URL, true)
		run("… one POST a result (2.2's API)", srvSingle.URL, true)
		run("run + report to our ResultsDB", ours, true)
	}
	b.StopTimer()
	for _, d := range []*countingResultsDB{double, single} {
		if got := d.results.Load(); got != int64(tests*b.N) {
			b.Fatalf("a double got %d results of %d", got, tests*b.N)
		}
	}

	perlRate := perlTAPParser(b, filepath.Join(taskDir, "out.tap"), tests, mb)
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

// countingResultsDB stores nothing and counts what it is sent, single
// posts and batches (it decodes each, as a server must), answering as our
// ResultsDB does; noBatch answers batches 404, as ResultsDB 2.2 does.
type countingResultsDB struct {
	noBatch           bool
	requests, results atomic.Int64
}

func (c *countingResultsDB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v2.0/groups/"):
		io.WriteString(w, `{"data": [], "next": null, "prev": null}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/results":
		var post map[string]any
		if err := json.NewDecoder(r.Body).Decode(&post); err != nil {
			http.Error(w, `{"message": "bad"}`, http.StatusBadRequest)
			return
		}
		c.requests.Add(1)
		c.results.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id": 1}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/results/batch" && !c.noBatch:
		var posts []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&posts); err != nil {
			http.Error(w, `{"message": "bad"}`, http.StatusBadRequest)
			return
		}
		c.requests.Add(1)
		c.results.Add(int64(len(posts)))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"data": []}`)
	default:
		http.Error(w, `{"message": "Not found"}`, http.StatusNotFound)
	}
}

// samplePeakHeap samples the heap in use until the function it returns is
// called, which answers the peak in MiB.
func samplePeakHeap() func() float64 {
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		return float64(peak.Load()) / (1 << 20)
	}
}

// writeTAP writes a TAP13 file of about size bytes of rpmlint-like tests
// with YAML blocks, and returns its test count.
func writeTAP(b *testing.B, path string, size int) int {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "TAP version 13")
	n, written := 0, 0
	for written < size {
		n++
		ok := "ok"
		if n%7 == 0 {
			ok = "not ok"
		}
		c, _ := fmt.Fprintf(w, "%s %d - rpmlint for xchat-0.5-%d.fc20\n  ---\n  item: xchat-0.5-%d.fc20\n  type: koji_build\n  outcome: PASSED\n  note: 0 errors, 10 warnings\n  arch: x86_64\n  details:\n    output: |-\n%s  ...\n",
			ok, n, n, n, strings.Repeat("      xchat.x86_64: W: spelling-error %description -l en_US Xchat -> X chat\n", 24))
		written += c
	}
	fmt.Fprintf(w, "1..%d\n", n)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return n
}

// perlTAPParser reads the file with Perl's TAP::Parser and answers its
// rate in MB/s.
func perlTAPParser(b *testing.B, path string, tests int, mb float64) float64 {
	perl, err := exec.LookPath("perl")
	if err != nil {
		b.Fatalf("perl (Debian's perl, with TAP::Parser) is needed for the comparison: %v", err)
	}
	script := `use TAP::Parser; my $p = TAP::Parser->new({source => $ARGV[0]}); my $n = 0; while (my $r = $p->next) { $n++ if $r->is_test } print "$n\n";`
	start := time.Now()
	out, err := exec.Command(perl, "-e", script, path).Output()
	if err != nil {
		b.Fatalf("perl TAP::Parser: %v", err)
	}
	rate := mb / time.Since(start).Seconds()
	var n int
	fmt.Sscan(string(out), &n)
	if n != tests {
		b.Fatalf("TAP::Parser read %d tests, we wrote %d", n, tests)
	}
	return rate
}
