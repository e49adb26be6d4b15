package results

import (
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
	table := taptest.Table{Title: "results.StreamTAP", Path: path, MB: mb, Tests: tests, Rows: []taptest.Row{
		{Name: "taskotron (results.StreamTAP)", Label: "parse", Took: took / time.Duration(b.N), HeapMiB: peak, Requests: "-"}}}
	table.PrintAndReport(b)
}
