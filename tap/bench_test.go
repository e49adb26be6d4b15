package tap

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/taskotron-go/taskotron/tap/taptest"
)

// TestHundredMegabytesInConstantMemory parses 100 MB and checks that the
// heap never holds more than a small, fixed amount.
func TestHundredMegabytesInConstantMemory(t *testing.T) {
	size := 100 << 20
	if testing.Short() {
		size = 10 << 20
	}
	p := NewParser(taptest.NewStream(size, taptest.ShortOutput))
	var ms runtime.MemStats
	maxHeap, tests := uint64(0), 0
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == KindTest {
			tests++
			if tests%20000 == 0 {
				runtime.ReadMemStats(&ms)
				maxHeap = max(maxHeap, ms.HeapInuse)
			}
		}
	}
	if pr := p.Problems(); len(pr) != 0 {
		t.Fatalf("problems: %v", pr)
	}
	if tests < 300000 && !testing.Short() {
		t.Fatalf("only %d tests: the generator is too small", tests)
	}
	if maxHeap > 16<<20 {
		t.Fatalf("heap in use reached %d MB parsing %d MB", maxHeap>>20, size>>20)
	}
	t.Logf("%d tests, heap in use at most %.1f MB", tests, float64(maxHeap)/(1<<20))
}

// BenchmarkParse reports parse throughput in MB/s (b.SetBytes).
func BenchmarkParse(b *testing.B) {
	const size = 8 << 20
	data, _ := io.ReadAll(taptest.NewStream(size, taptest.ShortOutput))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		p := NewParser(bytes.NewReader(data))
		for {
			if _, err := p.Next(); err != nil {
				break
			}
		}
	}
}
