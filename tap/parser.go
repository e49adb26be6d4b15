package tap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
)

// Limits that keep memory constant whatever the input.
const (
	// DefaultMaxLine is the longest line kept; the rest of a longer line is
	// dropped and reported as a problem.
	DefaultMaxLine = 1 << 20
	// DefaultMaxYAML is the largest YAML block kept.
	DefaultMaxYAML = 16 << 20
	// maxProblems caps the problems kept; the rest are only counted.
	maxProblems = 1000
	// maxRanges caps the memory used to detect duplicate and missing numbers;
	// in-order tests need one range, so only chaotic numbering reaches it.
	maxRanges = 4096
)

// Parser reads a TAP13 stream one event at a time.
type Parser struct {
	r       *bufio.Reader
	MaxLine int
	MaxYAML int

	lineNo   int
	lineBuf  []byte // the line being read, reused
	yamlBuf  []byte // the YAML block being read, reused
	started  bool   // a non-blank line has been seen
	tapSeen  bool   // a test or plan line has been seen
	done     bool
	bailed   bool
	pending  *Event // a test waiting for a possible YAML block
	queue    []Event
	head     int
	pushback *string // a line to read again (ended an unterminated block)

	plan       *Plan
	planLine   int
	planAfter  bool // the plan came after at least one test
	tests      int
	lastNumber int
	seen       ranges
	seenFull   bool

	problems     []Problem
	problemCount int
	version      int
	versionLine  int
}

// NewParser makes a parser reading from r.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: bufio.NewReaderSize(r, 64<<10), MaxLine: DefaultMaxLine, MaxYAML: DefaultMaxYAML}
}

// Next returns the next event, or io.EOF after the last one (and after a
// "Bail out!"). Other errors come from the reader. Events come in the
// order of their lines, but for comment lines between a test line and its
// YAML block, which come before the test.
func (p *Parser) Next() (Event, error) {
	for p.head == len(p.queue) {
		if p.done {
			return Event{}, io.EOF
		}
		if err := p.step(); err != nil {
			return Event{}, err
		}
	}
	ev := p.queue[p.head]
	p.queue[p.head] = Event{}
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	}
	return ev, nil
}

// All iterates over the remaining events. A read error is yielded once,
// with a zero Event, and ends the iteration.
func (p *Parser) All() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := p.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Problems lists the protocol breaches found so far; after Next has
// returned io.EOF it includes the end-of-stream checks (plan, missing tests).
func (p *Parser) Problems() []Problem {
	out := append([]Problem(nil), p.problems...)
	if extra := p.problemCount - len(p.problems); extra > 0 {
		out = append(out, Problem{Msg: fmt.Sprintf("%d more problems not listed", extra), Code: ProblemMore})
	}
	return out
}

// Plan returns the plan, or nil when none has been read.
func (p *Parser) Plan() *Plan { return p.plan }

// Tests is the number of test lines read so far.
func (p *Parser) Tests() int { return p.tests }

// BailedOut tells whether the stream ended with "Bail out!".
func (p *Parser) BailedOut() bool { return p.bailed }

// Version is the TAP version announced, 0 when there was no version line.
func (p *Parser) Version() int { return p.version }

func (p *Parser) problem(code ProblemCode, line int, format string, a ...any) {
	p.problemCount++
	if len(p.problems) < maxProblems {
		p.problems = append(p.problems, Problem{Line: line, Msg: fmt.Sprintf(format, a...), Code: code})
	}
}

// readLine returns the next line without its line ending, capped at
// MaxLine bytes.
func (p *Parser) readLine() (string, bool, error) {
	b, ok, err := p.readLineBytes()
	return string(b), ok, err
}

// readLineBytes is readLine without the copy: the bytes are valid until the
// next read, so most lines (those inside YAML blocks) cost no allocation.
func (p *Parser) readLineBytes() ([]byte, bool, error) {
	if p.pushback != nil {
		l := *p.pushback
		p.pushback = nil
		p.lineNo++
		return []byte(l), true, nil
	}
	buf := p.lineBuf[:0]
	truncated := false
	for {
		chunk, err := p.r.ReadSlice('\n')
		if len(buf)+len(chunk) <= p.MaxLine {
			buf = append(buf, chunk...)
		} else {
			if room := p.MaxLine - len(buf); room > 0 {
				buf = append(buf, chunk[:room]...)
			}
			truncated = true
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		p.lineBuf = buf[:0] // reused from line to line
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if len(buf) == 0 && len(chunk) == 0 && err != nil {
			return nil, false, nil
		}
		p.lineNo++
		if truncated {
			p.problem(ProblemTooLong, p.lineNo, "line longer than %d bytes, the rest was dropped", p.MaxLine)
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimRight(buf, "\r")
		return buf, true, nil
	}
}

// step reads one line and queues the events it completes.
func (p *Parser) step() error {
	line, ok, err := p.readLine()
	if err != nil {
		return fmt.Errorf("reading TAP at line %d: %w", p.lineNo+1, err)
	}
	if !ok {
		p.finish()
		return nil
	}
	if p.pending != nil {
		if indent, isStart := yamlStart(line); isStart {
			return p.readYAML(indent)
		}
		// A block still belongs to the test line before it across blank
		// and comment lines (see the package doc). The comments come out
		// at once, before the test, so that nothing but the test is held.
		if strings.TrimSpace(line) == "" {
			return nil
		}
		if strings.HasPrefix(line, "#") {
			p.queue = append(p.queue, commentEvent(line, p.lineNo))
			return nil
		}
		p.flushPending()
	}
	p.classify(line)
	return nil
}

func commentEvent(line string, n int) Event {
	return Event{Kind: KindComment, Line: n, Text: strings.TrimSpace(line[1:])}
}

func yamlStart(line string) (string, bool) {
	trimmed := strings.TrimLeft(line, " \t")
	indent := line[:len(line)-len(trimmed)]
	if indent == "" || strings.TrimRight(trimmed, " \t") != "---" {
		return "", false
	}
	return indent, true
}

// readYAML collects the block after a test line, up to the "..." line at
// the block's indentation.
func (p *Parser) readYAML(indent string) error {
	t := p.pending.Test
	t.HasYAML = true
	start := p.lineNo
	ind := []byte(indent)
	b := p.yamlBuf[:0]
	defer func() { p.yamlBuf = b[:0] }()
	over := false
	for {
		line, ok, err := p.readLineBytes()
		if err != nil {
			return fmt.Errorf("reading TAP at line %d: %w", p.lineNo+1, err)
		}
		if !ok {
			p.problem(ProblemYAML, start, "YAML block not closed with \"...\" before the end of the stream")
			break
		}
		if bytes.HasPrefix(line, ind) && string(bytes.TrimRight(line[len(ind):], " \t")) == "..." {
			break
		}
		var content []byte
		switch {
		case bytes.HasPrefix(line, ind):
			content = line[len(ind):]
		case len(bytes.TrimLeft(line, " \t")) == 0:
			content = nil
		default:
			p.problem(ProblemYAML, start, "YAML block not closed with \"...\" (ended by line %d)", p.lineNo)
			back := string(line)
			p.pushback = &back
			p.lineNo--
			t.YAML = string(b)
			p.flushPending()
			return nil
		}
		if over {
			continue
		}
		if len(b)+len(content)+1 > p.MaxYAML {
			p.problem(ProblemTooLong, start, "YAML block larger than %d bytes, the rest was dropped", p.MaxYAML)
			over = true
			continue
		}
		b = append(b, content...)
		b = append(b, '\n')
	}
	t.YAML = string(b)
	p.flushPending()
	return nil
}

func (p *Parser) flushPending() {
	if p.pending != nil {
		p.queue = append(p.queue, *p.pending)
		p.pending = nil
	}
}

func (p *Parser) classify(line string) {
	n := p.lineNo
	if strings.TrimSpace(line) == "" {
		return
	}
	p.started = true
	switch {
	case strings.HasPrefix(line, "TAP version "):
		v, err := strconv.Atoi(strings.TrimSpace(line[len("TAP version "):]))
		if err != nil {
			p.problem(ProblemVersion, n, "bad version line %q", line)
			p.queue = append(p.queue, Event{Kind: KindUnknown, Line: n, Text: line})
			return
		}
		switch {
		case p.versionLine > 0:
			p.problem(ProblemVersion, n, "second version line (the first is at line %d): two TAP streams in one", p.versionLine)
		case p.tapSeen:
			p.problem(ProblemVersion, n, "version line is not the first line")
		}
		if v < 13 {
			p.problem(ProblemVersion, n, "TAP version %d: only 13 and later have version lines", v)
		}
		if p.versionLine == 0 {
			p.version, p.versionLine = v, n
		}
		p.queue = append(p.queue, Event{Kind: KindVersion, Line: n, Version: v})
	case strings.HasPrefix(line, "ok") || strings.HasPrefix(line, "not ok"):
		t, ok := parseTestLine(line)
		if !ok {
			p.queue = append(p.queue, Event{Kind: KindUnknown, Line: n, Text: line})
			return
		}
		p.tapSeen = true
		p.addTest(&t, n)
		p.pending = &Event{Kind: KindTest, Line: n, Test: &t}
	case strings.HasPrefix(line, "Bail out!"):
		p.queue = append(p.queue, Event{Kind: KindBailOut, Line: n, Text: strings.TrimSpace(line[len("Bail out!"):])})
		p.bailed = true
		p.done = true
	case strings.HasPrefix(line, "#"):
		p.queue = append(p.queue, commentEvent(line, n))
	case line[0] >= '0' && line[0] <= '9':
		plan, ok := parsePlan(line)
		if !ok {
			p.queue = append(p.queue, Event{Kind: KindUnknown, Line: n, Text: line})
			return
		}
		p.tapSeen = true
		p.addPlan(&plan, n)
		p.queue = append(p.queue, Event{Kind: KindPlan, Line: n, Plan: &plan})
	default:
		p.queue = append(p.queue, Event{Kind: KindUnknown, Line: n, Text: line})
	}
}

func (p *Parser) addPlan(plan *Plan, n int) {
	if p.plan != nil {
		p.problem(ProblemPlan, n, "second plan (the first is at line %d)", p.planLine)
		return
	}
	if plan.Start != 1 {
		p.problem(ProblemPlan, n, "plan %d..%d does not start at 1", plan.Start, plan.End)
	}
	if plan.Skip && plan.Count() != 0 && !(plan.Start == 1 && plan.End == 0) {
		p.problem(ProblemPlan, n, "plan with SKIP must be 1..0")
	}
	p.plan, p.planLine = plan, n
	p.planAfter = p.tests > 0
}

func (p *Parser) addTest(t *Test, n int) {
	p.tests++
	if p.plan != nil && p.planAfter {
		p.problem(ProblemPlan, n, "test after the plan at line %d, which followed earlier tests", p.planLine)
	}
	if !t.Numbered {
		t.Number = p.lastNumber + 1
	} else {
		switch {
		case t.Number == 0:
			p.problem(ProblemNumber, n, "test number 0: numbers start at 1")
		case p.seen.has(t.Number):
			p.problem(ProblemNumber, n, "duplicate test number %d", t.Number)
		case t.Number < p.lastNumber:
			// A forward jump is reported at the end, as missing numbers,
			// unless the skipped numbers turn up later, out of order.
			p.problem(ProblemNumber, n, "test number %d out of order (after %d)", t.Number, p.lastNumber)
		}
	}
	if p.plan != nil && !p.planAfter && (t.Number < p.plan.Start || t.Number > p.plan.End) {
		p.problem(ProblemNumber, n, "test number %d outside the plan %d..%d", t.Number, p.plan.Start, p.plan.End)
	}
	p.lastNumber = t.Number
	if !p.seenFull && !p.seen.add(t.Number) {
		p.seenFull = true
	}
}

// finish runs the end-of-stream checks.
func (p *Parser) finish() {
	p.flushPending()
	p.done = true
	if p.bailed {
		return
	}
	if p.plan == nil {
		if p.started {
			p.problem(ProblemPlan, 0, "no plan (1..N) in the stream")
		} else {
			p.problem(ProblemPlan, 0, "empty stream")
		}
		return
	}
	if want := p.plan.Count(); want != p.tests {
		p.problem(ProblemCount, p.planLine, "plan %d..%d announces %d tests but %d ran", p.plan.Start, p.plan.End, want, p.tests)
	}
	if p.seenFull {
		return
	}
	var missing []string
	total := 0
	prev := p.plan.Start - 1
	report := func(lo, hi int) {
		if lo > hi {
			return
		}
		total += hi - lo + 1
		if len(missing) >= 10 {
			return
		}
		if lo == hi {
			missing = append(missing, strconv.Itoa(lo))
		} else {
			missing = append(missing, fmt.Sprintf("%d-%d", lo, hi))
		}
	}
	for _, r := range p.seen {
		if r.lo > p.plan.End {
			break
		}
		report(prev+1, min(r.lo-1, p.plan.End))
		prev = max(prev, r.hi)
	}
	report(prev+1, p.plan.End)
	if total > 0 {
		list := strings.Join(missing, ", ")
		if len(missing) >= 10 {
			list += ", …"
		}
		p.problem(ProblemMissing, p.planLine, "%d planned tests missing: %s", total, list)
	}
}

// ranges is a sorted set of integers kept as closed intervals.
type ranges []struct{ lo, hi int }

func (rs ranges) find(n int) int {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		if rs[m].hi < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (rs ranges) has(n int) bool {
	i := rs.find(n)
	return i < len(rs) && rs[i].lo <= n
}

// add inserts n; it returns false when the set is full.
func (rs *ranges) add(n int) bool {
	s := *rs
	i := s.find(n)
	if i < len(s) && s[i].lo <= n {
		return true
	}
	joinLeft := i > 0 && s[i-1].hi == n-1
	joinRight := i < len(s) && s[i].lo == n+1
	switch {
	case joinLeft && joinRight:
		s[i-1].hi = s[i].hi
		*rs = append(s[:i], s[i+1:]...)
	case joinLeft:
		s[i-1].hi = n
	case joinRight:
		s[i].lo = n
	default:
		if len(s) >= maxRanges {
			return false
		}
		s = append(s, struct{ lo, hi int }{})
		copy(s[i+1:], s[i:])
		s[i] = struct{ lo, hi int }{n, n}
		*rs = s
	}
	return true
}
