package trigger

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter counts write calls and takes a moment for each, as a busy
// disk would.
type slowWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.buf.Write(p)
}

// Many workers writing at once: every write's lines arrive whole and
// once, each Write returns only after its bytes are written, and the
// writes share system calls.
func TestGroupWriterKeepsWritesWholeAndShares(t *testing.T) {
	sw := &slowWriter{}
	g := newGroupWriter(sw, slog.New(slog.DiscardHandler))
	const workers, each = 32, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				lines := fmt.Sprintf("w%d-%d a\nw%d-%d b\n", w, i, w, i)
				g.Write([]byte(lines))
				sw.mu.Lock()
				written := bytes.Contains(sw.buf.Bytes(), []byte(lines))
				sw.mu.Unlock()
				if !written {
					t.Errorf("Write of %q returned before its bytes were written", lines)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	sc := bufio.NewScanner(&sw.buf)
	var prev string
	for sc.Scan() {
		line := sc.Text()
		if key, part, _ := cut(line); part == "b" && prev != key+" a" {
			t.Errorf("line %q does not follow its first line (got %q before it)", line, prev)
		}
		seen[line]++
		prev = line
	}
	if len(seen) != 2*workers*each {
		t.Fatalf("%d distinct lines, want %d", len(seen), 2*workers*each)
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("line %q written %d times", line, n)
		}
	}
	if sw.calls >= workers*each/2 {
		t.Errorf("%d write calls for %d writes: they were not grouped", sw.calls, workers*each)
	}
	t.Logf("%d writes in %d write calls", workers*each, sw.calls)
}

func cut(line string) (key, part string, ok bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return line, "", false
	}
	return line[:i], line[i+1:], true
}
