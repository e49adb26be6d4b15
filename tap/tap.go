// Package tap reads and writes TAP13 (the Test Anything Protocol, version
// 13) with embedded YAML diagnostics, the format Taskotron tasks print.
//
// The parser streams: it holds one line (capped) and at most one YAML block
// (capped) at a time, so input of any length parses in constant memory.
// Everything it does not understand is kept as an Unknown event, and
// everything that breaks the protocol's rules (missing, duplicate or
// out-of-order test numbers, no plan or a misplaced one, a second version
// line, a plan that does not match) is recorded as a Problem instead of
// stopping the parse.
//
// How strict it is follows the TAP13 specification (testanything.org) and
// the parsers Taskotron's peers used: Fedora's pytap13, Perl's TAP::Parser
// and tappy (testdata/peers holds the cases, peers_test.go runs
// TAP::Parser on them). Where they disagree:
//   - Lines that are not TAP before the version line (a task's own noise)
//     are no problem: the version line must be the first TAP line, as
//     TAP::Parser and pytap13 read it (tappy wants it on line 1). A version
//     line after a test or a plan is a problem, and so is a second one: two
//     streams glued together (pytap13 raises, TAP::Parser and tappy say so).
//   - No plan is a problem (the specification: the plan "must appear
//     once"; all three), and so are tests after a plan that followed tests:
//     the plan is at the beginning or the end (TAP::Parser, tappy; pytap13
//     silently drops such tests).
//   - Numbers that go backwards or repeat are problems (TAP::Parser;
//     pytap13 raises; tappy does not check), and so are planned numbers that
//     never ran.
//   - A YAML block belongs to the test line before it even when comment or
//     blank lines come between: the specification gives it to "the
//     preceding test", pytap13 gives it to the test, TAP::Parser still reads
//     it as a YAML block, tappy drops it as unknown lines. It ends at a "..." line at its own indentation, so a
//     block scalar holding a more indented "..." stays whole (TAP::Parser;
//     tappy and pytap13 cut it there).
//   - SKIP and TODO are read in any case and by their stem, with or without
//     a colon ("skipped:", "todo:"), as pytap13 reads them; TAP::Parser takes
//     "todo:" but not "skipped:", tappy the other way round. Read as a plain
//     comment, a skip would pass and an expected failure fail.
package tap

import (
	"fmt"
	"strings"
)

// Kind says what an Event is.
type Kind int

// Event kinds.
const (
	KindVersion Kind = iota + 1 // "TAP version 13"
	KindPlan                    // "1..N", optionally "# SKIP reason"
	KindTest                    // "ok" / "not ok", with its YAML block if any
	KindComment                 // "# text"
	KindBailOut                 // "Bail out! reason"
	KindUnknown                 // any other line, kept verbatim
)

func (k Kind) String() string {
	switch k {
	case KindVersion:
		return "version"
	case KindPlan:
		return "plan"
	case KindTest:
		return "test"
	case KindComment:
		return "comment"
	case KindBailOut:
		return "bail out"
	case KindUnknown:
		return "unknown"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Directive is a test line's SKIP or TODO marker.
type Directive string

// Directives.
const (
	NoDirective Directive = ""
	Skip        Directive = "SKIP"
	Todo        Directive = "TODO"
)

// Plan is a "1..N" line.
type Plan struct {
	Start, End int
	// Skip is set for "1..0 # SKIP reason": the whole run was skipped.
	Skip   bool
	Reason string
	// Comment is any other text after '#'.
	Comment string
}

// Count is the number of tests the plan announces.
func (p Plan) Count() int {
	if p.End < p.Start {
		return 0
	}
	return p.End - p.Start + 1
}

// Test is one test line and its YAML diagnostic block.
type Test struct {
	OK bool
	// Number is the test's number: the one written on the line, or, when
	// none is written, the previous test's number plus one.
	Number int
	// Numbered tells whether the number was written on the line.
	Numbered    bool
	Description string
	Directive   Directive
	// Reason follows the directive: "# SKIP no network" has reason "no network".
	Reason string
	// Comment is text after an unescaped '#' that is not a directive.
	Comment string
	// YAML is the diagnostic block with its indentation removed, without the
	// "---" and "..." lines; HasYAML tells an empty block from none.
	YAML    string
	HasYAML bool
}

// Event is one item of a TAP stream.
type Event struct {
	Kind Kind
	// Line is the 1-based line number where the event starts.
	Line int
	// Version is set for KindVersion.
	Version int
	// Plan is set for KindPlan.
	Plan *Plan
	// Test is set for KindTest.
	Test *Test
	// Text is the comment text (KindComment), the reason (KindBailOut) or
	// the whole line (KindUnknown).
	Text string
}

// Problem is a breach of the protocol found while parsing.
type Problem struct {
	Line int // 0 when it concerns the whole stream
	Msg  string
	// Code says what kind of breach it is, for consumers that treat some
	// differently (one that says "fewer tests ran" itself drops Count and
	// Missing).
	Code ProblemCode
}

// ProblemCode is the kind of a Problem.
type ProblemCode string

// Problem codes.
const (
	ProblemTooLong ProblemCode = "too-long" // a line or YAML block over its cap: part of it was dropped
	ProblemYAML    ProblemCode = "yaml"     // a YAML block not closed with "..."
	ProblemVersion ProblemCode = "version"  // a bad, late or second version line
	ProblemPlan    ProblemCode = "plan"     // no plan, a second one, a misplaced or malformed one
	ProblemNumber  ProblemCode = "number"   // a test number that is 0, repeated, out of order or outside the plan
	ProblemCount   ProblemCode = "count"    // the plan announces another number of tests than ran
	ProblemMissing ProblemCode = "missing"  // planned test numbers that never ran
	ProblemMore    ProblemCode = "more"     // stands for the problems past the cap on how many are kept
)

func (p Problem) String() string {
	if p.Line == 0 {
		return p.Msg
	}
	return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
}

// parseTestLine reads a line that starts with "ok" or "not ok". It returns
// false when the line is not a test line after all (e.g. "okay").
func parseTestLine(line string) (Test, bool) {
	var t Test
	rest := line
	switch {
	case strings.HasPrefix(rest, "not ok"):
		rest = rest[len("not ok"):]
	case strings.HasPrefix(rest, "ok"):
		rest = rest[len("ok"):]
		t.OK = true
	default:
		return t, false
	}
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '#' {
		return t, false
	}
	rest = strings.TrimLeft(rest, " \t")
	// Number: digits followed by the end of the line or a blank.
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i > 0 && i <= 9 && (i == len(rest) || rest[i] == ' ' || rest[i] == '\t') {
		n := 0
		for _, c := range rest[:i] {
			n = n*10 + int(c-'0')
		}
		t.Number, t.Numbered = n, true
		rest = strings.TrimLeft(rest[i:], " \t")
	}
	if rest == "-" {
		rest = ""
	} else if strings.HasPrefix(rest, "- ") || strings.HasPrefix(rest, "-\t") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	desc, after, hasHash := splitUnescapedHash(rest)
	t.Description = strings.TrimSpace(desc)
	if hasHash {
		t.Directive, t.Reason, t.Comment = parseDirective(after)
	}
	return t, true
}

// splitUnescapedHash cuts s at the first '#' not preceded by a backslash
// and unescapes "\#" and "\\" in the part before it.
func splitUnescapedHash(s string) (before, after string, found bool) {
	if !strings.ContainsAny(s, "#\\") {
		return s, "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == '#' || s[i+1] == '\\') {
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if c == '#' {
			return b.String(), s[i+1:], true
		}
		b.WriteByte(c)
	}
	return b.String(), "", false
}

// parseDirective reads what follows '#' on a test line: "SKIP reason",
// "skipped: reason", "TODO reason", or any other comment.
func parseDirective(s string) (Directive, string, string) {
	s = strings.TrimSpace(s)
	word := s
	if i := strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }); i >= 0 {
		word = s[:i]
	}
	lower := strings.ToLower(word)
	reason := strings.TrimSpace(strings.TrimLeft(s[len(word):], " \t:"))
	switch {
	case strings.HasPrefix(lower, "skip"):
		return Skip, reason, ""
	case strings.HasPrefix(lower, "todo"):
		return Todo, reason, ""
	}
	return NoDirective, "", s
}

// parsePlan reads "A..B" with an optional "# comment".
func parsePlan(line string) (Plan, bool) {
	var p Plan
	body, comment, hasComment := strings.Cut(line, "#")
	body = strings.TrimRight(body, " \t")
	a, b, ok := strings.Cut(body, "..")
	if !ok {
		return p, false
	}
	start, ok1 := atoi(a)
	end, ok2 := atoi(b)
	if !ok1 || !ok2 {
		return p, false
	}
	p.Start, p.End = start, end
	if hasComment {
		d, reason, other := parseDirective(comment)
		if d == Skip {
			p.Skip, p.Reason = true, reason
		} else {
			p.Comment = strings.Trim(comment, " \t")
			if other != "" {
				p.Comment = other
			}
		}
	}
	return p, true
}

func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
