// Package taptest is what TAP benchmarks and constant-memory tests share:
// a generated stream of rpmlint-like TAP13 tests with YAML blocks, Perl's
// TAP::Parser (what Taskotron's peers used) timed on the same file, and the
// peak heap while a stream is read. It imports only the standard library.
package taptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

// ShortOutput is the rpmlint output of each test in the stream issue 17
// measured (about 290 bytes a test).
var ShortOutput = []string{"xchat.x86_64: W: no-documentation", "xchat.x86_64: W: spelling-error %description -l en_US"}

// LongOutput is n lines of rpmlint output (n = 24: a YAML block of 2 KB).
func LongOutput(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = "xchat.x86_64: W: spelling-error %description -l en_US Xchat -> X chat"
	}
	return lines
}

// Stream generates a TAP13 stream of at least a given size without holding
// it: rpmlint-like tests, every seventh "not ok", each with a YAML block
// whose details.output holds the given lines.
type Stream struct {
	// Tests is how many tests were generated so far.
	Tests int

	left    int
	output  string
	buf     []byte
	started bool
	ended   bool
}

// NewStream returns a stream of about size bytes whose tests each have
// output as their details.output.
func NewStream(size int, output []string) *Stream {
	var b strings.Builder
	for _, l := range output {
		b.WriteString("      " + l + "\n")
	}
	return &Stream{left: size, output: b.String()}
}

func (s *Stream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		switch {
		case !s.started:
			s.buf = []byte("TAP version 13\n")
			s.started = true
		case s.ended:
			return 0, io.EOF
		case s.left <= 0:
			s.buf = fmt.Appendf(nil, "1..%d\n", s.Tests)
			s.ended = true
		default:
			s.Tests++
			ok := "ok"
			if s.Tests%7 == 0 {
				ok = "not ok"
			}
			s.buf = fmt.Appendf(nil, "%s %d - rpmlint for Koji build xchat-0.5-%d.fc20\n  ---\n  item: xchat-0.5-%d.fc20\n  type: koji_build\n  outcome: PASSED\n  note: 0 errors, 10 warnings\n  arch: x86_64\n  details:\n    output: |-\n%s  ...\n",
				ok, s.Tests, s.Tests, s.Tests, s.output)
			s.left -= len(s.buf)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// WriteFile writes NewStream(size, output) to path and returns its test
// count.
func WriteFile(path string, size int, output []string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	s := NewStream(size, output)
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = io.Copy(w, s)
	err = errors.Join(err, w.Flush(), f.Close())
	return s.Tests, err
}

// PerlTAPParser reads the file at path with Perl's TAP::Parser (Debian's
// perl has it) and returns how many tests it saw and how long it took.
func PerlTAPParser(path string) (tests int, took time.Duration, err error) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		return 0, 0, fmt.Errorf("perl (Debian's perl, with TAP::Parser) is needed for the comparison: %w", err)
	}
	script := `use TAP::Parser; my $p = TAP::Parser->new({source => $ARGV[0]}); my $n = 0; while (my $r = $p->next) { $n++ if $r->is_test } print "$n\n";`
	start := time.Now()
	out, err := exec.Command(perl, "-e", script, path).Output()
	took = time.Since(start)
	if err != nil {
		return 0, took, fmt.Errorf("perl TAP::Parser on %s: %w", path, err)
	}
	if _, err := fmt.Sscan(string(out), &tests); err != nil {
		return 0, took, fmt.Errorf("perl TAP::Parser on %s printed %q: %w", path, out, err)
	}
	return tests, took, nil
}

// PeakHeap samples the heap in use every 20 ms until the function it
// returns is called, which returns the highest sample in MiB.
func PeakHeap() (stop func() float64) {
	var peak atomic.Uint64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() float64 {
		close(quit)
		<-done
		return float64(peak.Load()) / (1 << 20)
	}
}
