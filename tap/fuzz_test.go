package tap

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tests reads every test of a stream.
func tests(data []byte) ([]Test, []Event, error) {
	ts, evs, _, err := testsParser(data)
	return ts, evs, err
}

// testsParser is tests that also gives the parser, done, to ask about problems.
func testsParser(data []byte) ([]Test, []Event, *Parser, error) {
	p := NewParser(bytes.NewReader(data))
	p.MaxLine, p.MaxYAML = 4096, 1<<16
	var ts []Test
	var evs []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return ts, evs, p, nil
		}
		if err != nil {
			return nil, nil, nil, err
		}
		evs = append(evs, ev)
		if ev.Kind == KindTest {
			ts = append(ts, *ev.Test)
		}
	}
}

// same compares what a writer promises to keep: values are kept on one
// line, so runs of blanks inside them may become one space.
func same(a, b Test) bool {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	return a.OK == b.OK && a.Number == b.Number && a.Directive == b.Directive &&
		norm(a.Description) == norm(b.Description) && norm(a.Reason) == norm(b.Reason) &&
		norm(a.Comment) == norm(b.Comment) && a.YAML == b.YAML && a.HasYAML == b.HasYAML
}

// FuzzParse checks that any input parses without panicking, that what
// the parser reads, written back by Writer, reads the same again, and that
// a stream without problems is a whole one: a plan and exactly its tests,
// numbered in order, and it stays so when written back.
func FuzzParse(f *testing.F) {
	f.Add([]byte("TAP version 13\n1..2\nok 1 - a\n  ---\n  outcome: PASSED\n  ...\nnot ok 2 # SKIP b\n"))
	f.Add([]byte("TAP version 13\n1..2\nok 1 - a\n# diag\n\n  ---\n  a: 1\n  ...\nTAP version 13\nok 2\nok 2\n1..2\nok 3\n"))
	peers, _ := filepath.Glob(filepath.Join("testdata", "peers", "*.tap"))
	for _, name := range peers {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first, evs, p, err := testsParser(data)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, pr := range p.Problems() {
			if pr.Code == "" || pr.Line < 0 || pr.Line > lines || pr.Msg == "" {
				t.Fatalf("problem %+v (the input has %d lines)", pr, lines)
			}
		}
		clean := len(p.Problems()) == 0 && !p.BailedOut()
		if clean {
			plan := p.Plan()
			if plan == nil || plan.Count() != len(first) {
				t.Fatalf("no problems, but plan %+v and %d tests: %q", plan, len(first), data)
			}
			for i, tt := range first {
				if tt.Number != plan.Start+i {
					t.Fatalf("no problems, but test %d has number %d: %q", i+1, tt.Number, data)
				}
			}
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, ev := range evs {
			if err := w.Event(ev); err != nil {
				t.Fatal(err)
			}
		}
		second, _, p2, err := testsParser(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if clean && (len(p2.Problems()) != 0 || p2.BailedOut()) {
			t.Fatalf("written back, a stream without problems has some: %v\n%q\n%q", p2.Problems(), data, buf.String())
		}
		if len(first) != len(second) {
			t.Fatalf("%d tests, %d after writing:\n%q\n%q", len(first), len(second), data, buf.String())
		}
		for i := range first {
			if !same(first[i], second[i]) {
				t.Fatalf("test %d changed:\n%+v\n%+v\nwritten: %q", i, first[i], second[i], buf.String())
			}
		}
	})
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Version()
	w.Plan(Plan{Start: 1, End: 3})
	w.Test(Test{OK: true, Description: "has # hash", YAML: "item: x\noutcome: PASSED\n"})
	w.Test(Test{Description: "multi\nline", Directive: Todo, Reason: "later"})
	w.Comment("two\nlines")
	w.Test(Test{OK: true, Directive: Skip, Reason: "no network"})
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	want := "TAP version 13\n1..3\nok 1 - has \\# hash\n  ---\n  item: x\n  outcome: PASSED\n  ...\n" +
		"not ok 2 - multi line # TODO later\n# two\n# lines\nok 3 # SKIP no network\n"
	if buf.String() != want {
		t.Fatalf("written:\n%s\nwant:\n%s", buf.String(), want)
	}
	ts, _, _ := tests(buf.Bytes())
	if len(ts) != 3 || ts[0].Description != "has # hash" || ts[0].YAML != "item: x\noutcome: PASSED\n" || ts[2].Directive != Skip {
		t.Fatalf("read back: %+v", ts)
	}
}

func TestWriterSkipAllPlan(t *testing.T) {
	var buf bytes.Buffer
	NewWriter(&buf).Plan(Plan{Start: 1, End: 0, Skip: true, Reason: "nothing to do"})
	if buf.String() != "1..0 # SKIP nothing to do\n" {
		t.Fatalf("%q", buf.String())
	}
}

// An unknown line that starts a YAML block cannot follow a test line
// without one, comments between or not: it would read back as its block.
func TestWriterRefusesABlockStartAfterABareTest(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Test(Test{OK: true})
	w.Comment("between")
	if err := w.Event(Event{Kind: KindUnknown, Text: "  ---"}); err == nil {
		t.Fatalf("written: %q", buf.String())
	}
	buf.Reset()
	w = NewWriter(&buf)
	w.Test(Test{OK: true})
	w.Event(Event{Kind: KindUnknown, Text: "noise"})
	if err := w.Event(Event{Kind: KindUnknown, Text: "  ---"}); err != nil {
		t.Fatalf("after another line: %v", err)
	}
}
