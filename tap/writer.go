package tap

import (
	"fmt"
	"io"
	"strings"
)

// Writer writes a TAP13 stream. Tests without a number get the next one.
type Writer struct {
	w    io.Writer
	last int
	err  error
	// bareTest: the last line but comments was a test line without a YAML
	// block, so an indented "---" next would read as the start of its block.
	bareTest bool
}

// NewWriter makes a writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Err is the first write error, if any; after one, writes do nothing.
func (w *Writer) Err() error { return w.err }

func (w *Writer) printf(format string, a ...any) error {
	if w.err != nil {
		return w.err
	}
	w.bareTest = false
	_, w.err = fmt.Fprintf(w.w, format, a...)
	return w.err
}

// Version writes "TAP version 13".
func (w *Writer) Version() error { return w.printf("TAP version 13\n") }

// Plan writes the plan line.
func (w *Writer) Plan(p Plan) error {
	start := p.Start
	if start == 0 && p.End == 0 && !p.Skip {
		start = 1
	}
	switch {
	case p.Skip:
		return w.printf("%d..%d # SKIP%s\n", start, p.End, prefixSpace(oneLine(p.Reason)))
	case p.Comment != "":
		return w.printf("%d..%d # %s\n", start, p.End, oneLine(p.Comment))
	}
	return w.printf("%d..%d\n", start, p.End)
}

// Test writes a test line and its YAML block.
func (w *Writer) Test(t Test) error {
	n := t.Number
	if n <= 0 && !t.Numbered {
		n = w.last + 1
	}
	w.last = n
	var b strings.Builder
	if !t.OK {
		b.WriteString("not ")
	}
	fmt.Fprintf(&b, "ok %d", n)
	if t.Description != "" {
		b.WriteString(" - ")
		b.WriteString(escapeDescription(oneLine(t.Description)))
	}
	switch {
	case t.Directive != NoDirective:
		fmt.Fprintf(&b, " # %s%s", t.Directive, prefixSpace(oneLine(t.Reason)))
	case t.Comment != "":
		b.WriteString(" # ")
		b.WriteString(oneLine(t.Comment))
	}
	b.WriteByte('\n')
	hasYAML := t.HasYAML || t.YAML != ""
	if hasYAML {
		b.WriteString("  ---\n")
		if t.YAML != "" {
			for _, l := range strings.Split(strings.TrimSuffix(t.YAML, "\n"), "\n") {
				b.WriteString("  ")
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
		b.WriteString("  ...\n")
	}
	err := w.printf("%s", b.String())
	w.bareTest = !hasYAML
	return err
}

// Comment writes each line of text as a "# " comment.
func (w *Writer) Comment(text string) error {
	bare := w.bareTest // a test line takes its block across comments
	for _, l := range strings.Split(text, "\n") {
		if err := w.printf("#%s\n", prefixSpace(strings.TrimRight(l, "\r"))); err != nil {
			return err
		}
	}
	w.bareTest = bare
	return nil
}

// BailOut writes "Bail out!" with a reason.
func (w *Writer) BailOut(reason string) error {
	return w.printf("Bail out!%s\n", prefixSpace(oneLine(reason)))
}

// Event writes any parsed event back; unknown lines are written verbatim.
func (w *Writer) Event(ev Event) error {
	switch ev.Kind {
	case KindVersion:
		return w.printf("TAP version %d\n", ev.Version)
	case KindPlan:
		return w.Plan(*ev.Plan)
	case KindTest:
		return w.Test(*ev.Test)
	case KindComment:
		return w.Comment(ev.Text)
	case KindBailOut:
		return w.BailOut(ev.Text)
	}
	if _, isStart := yamlStart(strings.TrimRight(ev.Text, "\r")); isStart && w.bareTest {
		// It would read as the test's block, across blank and comment
		// lines too. The parser never gives such an event: it would have
		// read the block.
		return fmt.Errorf("unknown line %q after a test line without a YAML block would read as its block", ev.Text)
	}
	// Verbatim: changing it (even a stray CR) could make it a test line.
	return w.printf("%s\n", strings.ReplaceAll(ev.Text, "\n", " "))
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// oneLine keeps a value on its line: line breaks would start new TAP lines.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return strings.TrimSpace(s)
	}
	return strings.Join(strings.Fields(s), " ")
}

func escapeDescription(s string) string {
	if !strings.ContainsAny(s, "#\\") {
		return s
	}
	s = strings.ReplaceAll(s, "\\", "\\\\")
	return strings.ReplaceAll(s, "#", "\\#")
}
