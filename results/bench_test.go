package results

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// writeTAP writes a TAP13 stream of about size bytes of rpmlint-like tests
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
		c, _ := fmt.Fprintf(w, "%s %d - rpmlint for Koji build xchat-0.5-%d.fc20\n  ---\n  item: xchat-0.5-%d.fc20\n  type: koji_build\n  outcome: PASSED\n  note: 0 errors, 10 warnings\n  arch: x86_64\n  details:\n    output: |-\n      xchat.x86_64: W: no-documentation\n      xchat.x86_64: W: spelling-error %%description -l en_US\n  ...\n", ok, n, n, n)
		written += c
	}
	fmt.Fprintf(w, "1..%d\n", n)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return n
}

// BenchmarkStreamTAP100MB reads a 100 MB TAP13 stream into results, as
// `taskotron report` does, beside Perl's TAP::Parser (what Taskotron's
// peers used) on the same file, and reports both rates and the peak heap.
func BenchmarkStreamTAP100MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.tap")
	tests := writeTAP(b, path, 100<<20)
	fi, _ := os.Stat(path)
	mb := float64(fi.Size()) / (1 << 20)

	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() { // sample the heap while the stream is read
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var took time.Duration
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n := 0
		if _, err := StreamTAP(f, Defaults{CheckName: "rpmlint", Item: "x", Type: "koji_build"}, func(contract.Result) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		f.Close()
		if n != tests {
			b.Fatalf("read %d results of %d", n, tests)
		}
	}
	b.StopTimer()
	close(stop)
	ours := mb / (took.Seconds() / float64(b.N))

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
	theirs := mb / time.Since(start).Seconds()
	var perlTests int
	fmt.Sscan(string(out), &perlTests)
	if perlTests != tests {
		b.Fatalf("TAP::Parser read %d tests, we %d", perlTests, tests)
	}
	b.ReportMetric(ours, "MB/s")
	b.ReportMetric(theirs, "perl-MB/s")
	b.ReportMetric(ours/theirs, "x-perl")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	fmt.Printf("\n%-34s %10s %12s %10s\n", "TAP13, 100 MB, YAML blocks", "MB/s", "peak heap", "tests")
	fmt.Printf("%-34s %10.1f %10.1f MiB %10d\n", "taskotron (results.StreamTAP)", ours, float64(peak.Load())/(1<<20), tests)
	fmt.Printf("%-34s %10.1f %12s %10d\n", "Perl TAP::Parser (same file)", theirs, "", perlTests)
}
