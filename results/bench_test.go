package results

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/tap/taptest"
)

// BenchmarkStreamTAP100MB reads a 100 MB TAP13 stream into results, as
// `taskotron report` does, beside Perl's TAP::Parser (what Taskotron's
// peers used) on the same file, and reports both rates and the peak heap.
func BenchmarkStreamTAP100MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.tap")
	tests, mb, err := taptest.WriteFile(path, 100<<20, taptest.ShortOutput)
	if err != nil {
		b.Fatal(err)
	}

	stop := taptest.PeakHeap()
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
	peak := stop()
	ours := mb / (took.Seconds() / float64(b.N))

	perlTests, perlTook, err := taptest.PerlTAPParser(path)
	if err != nil {
		b.Fatal(err)
	}
	if perlTests != tests {
		b.Fatalf("TAP::Parser read %d tests, we %d", perlTests, tests)
	}
	theirs := mb / perlTook.Seconds()
	b.ReportMetric(ours, "MB/s")
	b.ReportMetric(theirs, "perl-MB/s")
	b.ReportMetric(ours/theirs, "x-perl")
	b.ReportMetric(peak, "peak-heap-MiB")
	fmt.Printf("\n%-34s %10s %12s %10s\n", "TAP13, 100 MB, YAML blocks", "MB/s", "peak heap", "tests")
	fmt.Printf("%-34s %10.1f %10.1f MiB %10d\n", "taskotron (results.StreamTAP)", ours, peak, tests)
	fmt.Printf("%-34s %10.1f %12s %10d\n", "Perl TAP::Parser (same file)", theirs, "", perlTests)
}
