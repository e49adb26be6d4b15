package tap

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func parseAll(t *testing.T, in string) ([]Event, *Parser) {
	t.Helper()
	p := NewParser(strings.NewReader(in))
	var evs []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return evs, p
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

func problems(p *Parser) string {
	var s []string
	for _, pr := range p.Problems() {
		s = append(s, pr.String())
	}
	return strings.Join(s, "\n")
}

func TestParseFullStream(t *testing.T) {
	in := "TAP version 13\n" +
		"# starting\n" +
		"1..5\n" +
		"ok 1 - first test\n" +
		"not ok 2 second without dash\n" +
		"  ---\n" +
		"  outcome: FAILED\n" +
		"  details:\n" +
		"    output: |-\n" +
		"      line one\n" +
		"\n" +
		"      line three\n" +
		"  ...\n" +
		"ok - no number # SKIP not today\n" +
		"not ok 4 # TODO write it\n" +
		"some garbage line\n" +
		"ok 5 - has \\# hash and \\\\ backslash # some comment\n"
	evs, p := parseAll(t, in)
	if got := problems(p); got != "" {
		t.Fatalf("problems:\n%s", got)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind.String())
	}
	if got := strings.Join(kinds, ","); got != "version,comment,plan,test,test,test,test,unknown,test" {
		t.Fatalf("kinds = %s", got)
	}
	if evs[1].Text != "starting" || evs[2].Plan.Count() != 5 {
		t.Errorf("comment/plan = %+v %+v", evs[1], evs[2].Plan)
	}
	t1, t2, t3, t4, t5 := evs[3].Test, evs[4].Test, evs[5].Test, evs[6].Test, evs[8].Test
	if !t1.OK || t1.Number != 1 || t1.Description != "first test" || t1.HasYAML {
		t.Errorf("t1 = %+v", t1)
	}
	if t2.OK || t2.Number != 2 || t2.Description != "second without dash" || !t2.HasYAML {
		t.Errorf("t2 = %+v", t2)
	}
	if want := "outcome: FAILED\ndetails:\n  output: |-\n    line one\n\n    line three\n"; t2.YAML != want {
		t.Errorf("t2 YAML = %q, want %q", t2.YAML, want)
	}
	if t3.Numbered || t3.Number != 3 || t3.Directive != Skip || t3.Reason != "not today" || t3.Description != "no number" {
		t.Errorf("t3 = %+v", t3)
	}
	if t4.Directive != Todo || t4.Reason != "write it" || t4.Description != "" {
		t.Errorf("t4 = %+v", t4)
	}
	if evs[7].Text != "some garbage line" || evs[7].Line != 16 {
		t.Errorf("unknown = %+v", evs[7])
	}
	if t5.Description != "has # hash and \\ backslash" || t5.Comment != "some comment" || t5.Directive != NoDirective {
		t.Errorf("t5 = %+v", t5)
	}
	if evs[4].Line != 5 || evs[8].Line != 17 {
		t.Errorf("lines: %d %d", evs[4].Line, evs[8].Line)
	}
}

func TestPlanAtEndAndCRLF(t *testing.T) {
	evs, p := parseAll(t, "TAP version 13\r\nok 1 - a\r\n  ---\r\n  x: 1\r\n  ...\r\nok 2 - b\r\n1..2\r\n")
	if got := problems(p); got != "" {
		t.Fatalf("problems: %s", got)
	}
	if len(evs) != 4 || evs[1].Test.YAML != "x: 1\n" || evs[2].Test.Description != "b" || evs[3].Kind != KindPlan {
		t.Fatalf("events = %+v", evs)
	}
}

func TestSkipAll(t *testing.T) {
	evs, p := parseAll(t, "TAP version 13\n1..0 # Skipped: no python files\n")
	if got := problems(p); got != "" {
		t.Fatalf("problems: %s", got)
	}
	if pl := evs[1].Plan; !pl.Skip || pl.Reason != "no python files" || pl.Count() != 0 {
		t.Fatalf("plan = %+v", pl)
	}
}

func TestProblems(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1..3\nok 1\nok 1\nok 3\n", "line 3: duplicate test number 1\nline 1: 1 planned tests missing: 2"},
		{"1..3\nok 2\nok 1\nok 3\n", "line 3: test number 1 out of order (after 2)"},
		{"1..4\nok 1\nok 2\n", "line 1: plan 1..4 announces 4 tests but 2 ran\nline 1: 2 planned tests missing: 3-4"},
		{"1..3\nok 1\nok 3\n", "line 1: plan 1..3 announces 3 tests but 2 ran\nline 1: 1 planned tests missing: 2"},
		{"ok 1\nok 2\n", "no plan (1..N) in the stream"},
		{"", "empty stream"},
		{"1..1\nok 1\n1..1\n", "line 3: second plan (the first is at line 1)"},
		{"ok 1\nTAP version 13\n1..1\n", "line 2: version line is not the first line"},
		{"1..1\nok 1\n  ---\n  a: 1\n", "line 3: YAML block not closed with \"...\" before the end of the stream"},
		{"1..2\nok 1\n  ---\n  a: 1\nok 2\n", "line 3: YAML block not closed with \"...\" (ended by line 5)"},
		{"1..1\nok 1\nok 2\n", "line 3: test number 2 outside the plan 1..1\nline 1: plan 1..1 announces 1 tests but 2 ran"},
		{"1..2\nok 1\nBail out! disk full\nok 2\n", ""},
	}
	for _, c := range cases {
		_, p := parseAll(t, c.in)
		if got := problems(p); got != c.want {
			t.Errorf("%q:\ngot  %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestUnterminatedBlockLineIsReread(t *testing.T) {
	evs, _ := parseAll(t, "1..2\nok 1\n  ---\n  a: 1\nok 2\n")
	if len(evs) != 3 || evs[1].Test.YAML != "a: 1\n" || evs[2].Test.Number != 2 || evs[2].Line != 5 {
		t.Fatalf("events = %+v", evs)
	}
}

func TestBailOutStops(t *testing.T) {
	evs, p := parseAll(t, "1..2\nok 1\nBail out! disk full\nok 2\n")
	if len(evs) != 3 || evs[2].Kind != KindBailOut || evs[2].Text != "disk full" || !p.BailedOut() {
		t.Fatalf("events = %+v", evs)
	}
}

func TestLongLineIsCapped(t *testing.T) {
	p := NewParser(strings.NewReader("1..1\nok 1 - " + strings.Repeat("x", 5000) + "\n"))
	p.MaxLine = 100
	var last Event
	for {
		ev, err := p.Next()
		if err != nil {
			break
		}
		last = ev
	}
	if last.Kind != KindTest || len(last.Test.Description) != 100-len("ok 1 - ") {
		t.Fatalf("last = %v %d", last.Kind, len(last.Test.Description))
	}
	if got := problems(p); !strings.Contains(got, "line 2: line longer than 100 bytes") {
		t.Errorf("problems = %q", got)
	}
}

func TestNotTestLines(t *testing.T) {
	evs, _ := parseAll(t, "okay then\nnot okay\n1..x\n")
	for _, ev := range evs {
		if ev.Kind != KindUnknown {
			t.Errorf("%q read as %v", ev.Text, ev.Kind)
		}
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "ok\n"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestAllStopsAtReadError(t *testing.T) {
	var kinds []Kind
	var last error
	for ev, err := range NewParser(&failingReader{n: 2}).All() {
		kinds = append(kinds, ev.Kind)
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), "disk on fire") {
		t.Fatalf("error = %v", last)
	}
	if len(kinds) != 2 || kinds[0] != KindTest {
		t.Fatalf("kinds = %v", kinds)
	}
}
