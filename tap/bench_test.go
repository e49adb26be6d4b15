package tap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// stream generates a TAP stream of at least size bytes without holding it.
type stream struct {
	size, n int
	buf     []byte
	started bool
}

func newStream(size int) *stream { return &stream{size: size} }

func (s *stream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		switch {
		case !s.started:
			s.buf = []byte("TAP version 13\n")
			s.started = true
		case s.n >= 0 && s.size <= 0:
			s.buf = fmt.Appendf(nil, "1..%d\n", s.n)
			s.n = -1
		case s.n < 0:
			return 0, io.EOF
		default:
			s.n++
			ok := "ok"
			if s.n%7 == 0 {
				ok = "not ok"
			}
			s.buf = fmt.Appendf(nil, "%s %d - rpmlint for Koji build xchat-0.5-%d.fc20\n  ---\n  item: xchat-0.5-%d.fc20\n  type: koji_build\n  outcome: PASSED\n  note: 0 errors, 10 warnings\n  arch: x86_64\n  details:\n    output: |-\n      xchat.x86_64: W: no-documentation\n      xchat.x86_64: W: spelling-error %%description -l en_US\n  ...\n", ok, s.n, s.n, s.n)
			s.size -= len(s.buf)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// TestHundredMegabytesInConstantMemory parses 100 MB and checks that the
// heap never holds more than a small, fixed amount.
func TestHundredMegabytesInConstantMemory(t *testing.T) {
	size := 100 << 20
	if testing.Short() {
		size = 10 << 20
	}
	p := NewParser(newStream(size))
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
	data, _ := io.ReadAll(newStream(size))
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
