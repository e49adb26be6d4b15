// Package taptest is what TAP benchmarks and constant-memory tests share:
// a generated stream of rpmlint-like TAP13 tests with YAML blocks, Perl's
// TAP::Parser (what Taskotron's peers used) timed on the same file, the
// peak heap while a stream is read, and the table a benchmark prints of
// them. It imports only the standard library.
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
	"testing"
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
// count and its size in MiB.
func WriteFile(path string, size int, output []string) (tests int, mb float64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	s := NewStream(size, output)
	w := bufio.NewWriterSize(f, 1<<20)
	n, err := io.Copy(w, s)
	err = errors.Join(err, w.Flush(), f.Close())
	return s.Tests, float64(n) / (1 << 20), err
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

// Table is what a TAP benchmark prints: rows timed on one TAP file, each
// beside Perl's TAP::Parser on the same file, run when the table is
// printed.
type Table struct {
	Title string
	// Path is the TAP file, of MB megabytes and Tests tests.
	Path  string
	MB    float64
	Tests int
	Rows  []Row
}

// Row is one timed way through the file.
type Row struct {
	Name string
	// Label names the row's metric (Label-MB/s) and its CPU profile label.
	Label   string
	Took    time.Duration
	HeapMiB float64
	// Requests is how many requests stored results, or "-".
	Requests string
}

// Print runs Perl's TAP::Parser on the file, checks it read as many tests,
// and prints the table to w with the goal (issue 17's: 10× Perl in under
// 64 MiB). It returns Perl's rate in MB/s.
func (t Table) Print(w io.Writer) (perlMBs float64, err error) {
	tests, took, err := PerlTAPParser(t.Path)
	if err != nil {
		return 0, err
	}
	if tests != t.Tests {
		return 0, fmt.Errorf("TAP::Parser read %d tests of %s, we wrote %d", tests, t.Path, t.Tests)
	}
	perl := t.MB / took.Seconds()
	fmt.Fprintf(w, "\n%-36s %9s %7s %11s %10s %9s\n", fmt.Sprintf("%s, TAP13 %.0f MB, %d tests", t.Title, t.MB, t.Tests), "MB/s", "× Perl", "peak heap", "results/s", "requests")
	for _, r := range t.Rows {
		rate := t.MB / r.Took.Seconds()
		fmt.Fprintf(w, "%-36s %9.1f %7.1f %7.1f MiB %10.0f %9s\n", r.Name, rate, rate/perl, r.HeapMiB, float64(t.Tests)/r.Took.Seconds(), r.Requests)
	}
	fmt.Fprintf(w, "%-36s %9.1f %7s\n", "Perl TAP::Parser (same file)", perl, "1.0")
	fmt.Fprintf(w, "%-36s %9s %7s %11s\n", "goal", "", "10", "< 64 MiB")
	return perl, nil
}

// PrintAndReport prints the table to stdout and reports each row's rate
// (Label-MB/s), Perl's, and the highest peak heap as b's metrics.
func (t Table) PrintAndReport(b *testing.B) {
	b.Helper()
	perl, err := t.Print(os.Stdout)
	if err != nil {
		b.Fatal(err)
	}
	heap := 0.0
	for _, r := range t.Rows {
		b.ReportMetric(t.MB/r.Took.Seconds(), r.Label+"-MB/s")
		heap = max(heap, r.HeapMiB)
	}
	b.ReportMetric(perl, "perl-MB/s")
	b.ReportMetric(heap, "peak-heap-MiB")
}
