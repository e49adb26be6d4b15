package results

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// endlessTAP is a TAP stream that never ends, counting the tests read.
type endlessTAP struct {
	n, read int
	buf     []byte
}

func (e *endlessTAP) Read(p []byte) (int, error) {
	for len(e.buf) < len(p) {
		e.n++
		if e.n == 1 {
			e.buf = append(e.buf, "TAP version 13\n"...)
		}
		e.buf = fmt.Appendf(e.buf, "ok %d - test %d\n  ---\n  item: xchat-0.5-%d.fc20\n  ...\n", e.n, e.n, e.n)
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	e.read += n
	return n, nil
}

// Results reach emit in the stream's order, each once, across many chunks
// and where a large test's YAML fills a chunk on its own.
func TestStreamTAPKeepsTheOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString("TAP version 13\n")
	const n = 5 * pipeChunk
	big := strings.Repeat(strings.Repeat("x", 60)+"\n      ", pipeChunkBytes/60)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "ok %d - test %d\n  ---\n  item: item-%d\n", i, i, i)
		if i%100 == 0 {
			fmt.Fprintf(&b, "  details:\n    output: |\n      %s\n", big)
		}
		b.WriteString("  ...\n")
	}
	fmt.Fprintf(&b, "1..%d\n", n)
	i := 0
	_, err := StreamTAP(strings.NewReader(b.String()), Defaults{CheckName: "order", Type: "koji_build"}, func(r contract.Result) error {
		i++
		if want := fmt.Sprintf("item-%d", i); r.Item != want {
			return fmt.Errorf("result %d is %s", i, r.Item)
		}
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("%d results of %d: %v", i, n, err)
	}
}

// emit's error stops the read soon after, rather than at the stream's end
// (this one has none), and is what StreamTAP returns.
func TestStreamTAPStopsAtEmitsError(t *testing.T) {
	src := &endlessTAP{}
	stop := errors.New("spool full")
	got := 0
	_, err := StreamTAP(src, Defaults{CheckName: "endless", Type: "koji_build"}, func(contract.Result) error {
		if got++; got == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || got != 10 {
		t.Fatalf("after %d results: %v; want the 10th's error", got, err)
	}
	// The reader runs ahead by at most the chunks in flight and what the
	// parser buffers (64 KiB, about a thousand of these tests).
	if src.n > 10+3*pipeChunk+1200 {
		t.Errorf("read %d tests after emit failed at the 10th", src.n)
	}
}

// A panic in emit leaves no reader behind, and one in the reader is the
// caller's, as it would be without the goroutine.
func TestPipelinePanics(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("emit's panic was lost")
			}
		}()
		StreamTAP(&endlessTAP{}, Defaults{CheckName: "endless", Type: "koji_build"}, func(contract.Result) error { panic("emit") })
	}()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after emit panicked, %d before: the reader was left running", n, before)
	}

	defer func() {
		if p := recover(); p != "read" {
			t.Errorf("recovered %v, want the reader's panic", p)
		}
	}()
	pipeline(func(send func(contract.Result, int) error) error {
		send(contract.Result{}, 0)
		panic("read")
	}, func(contract.Result) error { return nil })
}
