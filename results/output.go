// Package results is what task output means, as plain data: TAP13 or
// ResultYAML read into results (with the result namespace rules), results
// turned into ResultsDB posts, the terminal result of a broken run, and the
// wording of Bodhi comments. It delivers nothing (that is the reporter's
// job) and imports contract and tap only.
package results

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/tap"
)

// Defaults fill what task output leaves out.
type Defaults struct {
	// CheckName is used when a result names no checkname: the formula's name.
	CheckName string
	// Namespace prefixes every checkname (dist + rpmlint -> dist.rpmlint)
	// unless the checkname already starts with "<namespace>.".
	Namespace string
	Item      string
	Type      string
	Arch      string
	// Namespaces, when set, is the allowlist of reference §2.8, checked
	// against Origin, the task repo's origin URL.
	Namespaces *Namespaces
	Origin     string
}

// Output formats.
const (
	FormatTAP        = "tap"
	FormatResultYAML = "resultyaml"
)

// Output is parsed task output.
type Output struct {
	Format  string
	Results []contract.Result
	// Problems are the breaches of the TAP protocol the parser saw (tap's
	// package doc says which; unknown lines are not problems). Each makes
	// the output broken: the error names them too, but for a short plan's
	// count and missing numbers, which it says in one line of its own.
	Problems []string
}

// OutputError lists what was wrong with task output, one line each.
type OutputError struct {
	Lines   []string
	errs    []error
	dropped int
}

// Unwrap gives the causes that are errors of their own (e.g. ErrNamespace).
func (e *OutputError) Unwrap() []error { return e.errs }

// add records one problem.
func (e *OutputError) add(err error) {
	// Broken output of any length makes an error of bounded size.
	if len(e.Lines) >= maxErrorLines {
		e.dropped++
		return
	}
	e.Lines = append(e.Lines, err.Error())
	e.errs = append(e.errs, err)
}

// maxErrorLines bounds the problems an OutputError names one by one.
const maxErrorLines = 100

// close names how many problems were not named.
func (e *OutputError) close() {
	if e.dropped > 0 {
		e.Lines = append(e.Lines, fmt.Sprintf("%d more problems", e.dropped))
		e.dropped = 0
	}
}

func (e *OutputError) Error() string {
	if len(e.Lines) == 1 {
		return e.Lines[0]
	}
	return fmt.Sprintf("%d problems in task output: %s", len(e.Lines), strings.Join(e.Lines, "; "))
}

// ParseOutput reads TAP13 (with YAML blocks) or ResultYAML (results: [...])
// and returns its results. On error the valid results are still returned:
// a result that cannot be read is left out and named in the error, and a
// TAP stream that bailed out, ran fewer tests than planned or breaks the
// protocol (no plan, a second version line, numbers out of order or
// repeated, tests after a closing plan, …) is an error too, because results
// may be missing or wrong. Callers should report what they got and treat
// the run as broken.
func ParseOutput(data []byte, d Defaults) ([]contract.Result, error) {
	out, err := ParseOutputDetail(data, d)
	return out.Results, err
}

// ParseOutputDetail is ParseOutput that also says which format it read and
// which protocol problems it saw.
func ParseOutputDetail(data []byte, d Defaults) (Output, error) {
	switch detectFormat(data) {
	case FormatTAP:
		return parseTAP(bytes.NewReader(data), d)
	case FormatResultYAML:
		return parseResultYAML(data, d)
	}
	return Output{}, &OutputError{Lines: []string{"task output is neither TAP13 (no \"TAP version\", plan or test line) nor ResultYAML (no top-level \"results\" key)"}}
}

// ParseTAP reads TAP13 from r as a stream.
func ParseTAP(r io.Reader, d Defaults) (Output, error) { return parseTAP(r, d) }

// detectFormat tells TAP13 from ResultYAML. A document that starts like
// YAML ("results:" or "---") is ResultYAML; otherwise any TAP line (a
// version line, a test line, a plan) makes it TAP, even after noise a task
// printed first.
// DetectFormat tells the format of task output from its start (a few KiB
// are enough for TAP13): FormatTAP, FormatResultYAML or "".
func DetectFormat(data []byte) string { return detectFormat(data) }

func detectFormat(data []byte) string {
	first := true
	sawTAP := false
	for _, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimRight(string(raw), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if first && (strings.HasPrefix(line, "results:") || line == "---" || strings.HasPrefix(line, "--- ")) {
			return FormatResultYAML
		}
		first = false
		if strings.HasPrefix(line, "TAP version") || isTAPTestLine(line) || isTAPPlan(line) {
			sawTAP = true
			break
		}
	}
	if sawTAP {
		return FormatTAP
	}
	var probe map[string]any
	if err := yaml.Unmarshal(data, &probe); err == nil {
		if _, ok := probe["results"]; ok {
			return FormatResultYAML
		}
	}
	return ""
}

func isTAPTestLine(line string) bool {
	for _, p := range []string{"ok", "not ok"} {
		if rest, ok := strings.CutPrefix(line, p); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '#') {
			return true
		}
	}
	return false
}

func isTAPPlan(line string) bool {
	body, _, _ := strings.Cut(line, "#")
	a, b, ok := strings.Cut(strings.TrimSpace(body), "..")
	return ok && a != "" && b != "" && strings.Trim(a+b, "0123456789") == ""
}

// maxProtocolLines caps the TAP protocol problems an error names one by
// one: a stream numbered at random has one a line, and the error is one line.
const maxProtocolLines = 10

func parseTAP(r io.Reader, d Defaults) (Output, error) {
	var results []contract.Result
	out, err := StreamTAP(r, d, func(res contract.Result) error {
		results = append(results, res)
		return nil
	})
	out.Results = results
	return out, err
}

// readTAP is StreamTAP in one goroutine: it hands each result to emit
// with the size of the YAML block it came from.
func readTAP(r io.Reader, d Defaults, emit func(res contract.Result, size int) error) (Output, error) {
	out := Output{Format: FormatTAP}
	oe := &OutputError{}
	p := tap.NewParser(r)
	planLine := 0
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			oe.add(err)
			break
		}
		if ev.Kind == tap.KindPlan && planLine == 0 {
			planLine = ev.Line
		}
		if ev.Kind != tap.KindTest {
			continue
		}
		t := ev.Test
		where := func() string { return fmt.Sprintf("test %d (line %d)", t.Number, ev.Line) }
		fields := map[string]any{}
		if t.HasYAML && strings.TrimSpace(t.YAML) != "" {
			m, err := blockFields(t.YAML)
			if err != nil {
				// The block's first line follows the test line and "---".
				oe.add(fmt.Errorf("%s: YAML block%s", where(), streamLines(oneLine(err.Error()), ev.Line+1)))
				continue
			}
			if m != nil {
				fields = m
			}
		}
		res, err := resultFromMap(fields, d, tapOutcome(t), directiveNote(t))
		if err != nil {
			oe.add(fmt.Errorf("%s: %w", where(), err))
			continue
		}
		if err := emit(res, len(t.YAML)); err != nil {
			return out, err
		}
	}
	plan := p.Plan()
	short := plan != nil && !p.BailedOut() && !(plan.Skip && p.Tests() == 0) && p.Tests() < plan.Count()
	shown, missing := 0, ""
	for _, pr := range p.Problems() {
		out.Problems = append(out.Problems, pr.String())
		if short && (pr.Code == tap.ProblemCount || pr.Code == tap.ProblemMissing) {
			if pr.Code == tap.ProblemMissing {
				missing = " (" + pr.Msg + ")"
			}
			continue // said below, in one line
		}
		if shown++; shown <= maxProtocolLines {
			oe.add(errors.New(pr.String()))
		}
	}
	if shown > maxProtocolLines {
		oe.add(fmt.Errorf("%d more TAP protocol problems", shown-maxProtocolLines))
	}
	if p.BailedOut() {
		oe.add(fmt.Errorf("task bailed out after %d tests", p.Tests()))
	}
	if plan != nil && !p.BailedOut() {
		if plan.Skip && p.Tests() == 0 {
			// A skipped run still says so in ResultsDB: "no results" cannot
			// be told from "still running".
			note := "skipped"
			if plan.Reason != "" {
				note += ": " + plan.Reason
			}
			res, err := resultFromMap(map[string]any{}, d, contract.Info, note)
			if err != nil {
				oe.add(fmt.Errorf("plan: %w", err))
			} else if err := emit(res, 0); err != nil {
				return out, err
			}
		} else if short {
			oe.add(fmt.Errorf("line %d: TAP plan %d..%d announces %d tests but only %d ran%s", planLine, plan.Start, plan.End, plan.Count(), p.Tests(), missing))
		}
	}
	oe.close()
	if len(oe.Lines) > 0 {
		return out, oe
	}
	return out, nil
}

// tapOutcome is the outcome a test line implies when its YAML has none.
// blockFields decodes a test's YAML block: the common shape at once
// (yamlish), anything else with yaml.v3. nil is an empty document.
func blockFields(block string) (map[string]any, error) {
	if m, ok := yamlish(block); ok {
		return m, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(block), &v); err != nil {
		return nil, fmt.Errorf(": %s", err.Error())
	}
	m, ok := normalize(v).(map[string]any)
	if !ok && v != nil {
		return nil, fmt.Errorf(" is not a mapping")
	}
	return m, nil
}

func tapOutcome(t *tap.Test) contract.Outcome {
	switch {
	case t.Directive == tap.Skip:
		return contract.Info
	case t.Directive == tap.Todo && !t.OK:
		// An expected failure: worth knowing, not a verdict.
		return contract.Info
	case t.OK:
		return contract.Passed
	}
	return contract.Failed
}

func directiveNote(t *tap.Test) string {
	switch t.Directive {
	case tap.Skip:
		return strings.TrimSpace("skipped " + t.Reason)
	case tap.Todo:
		return strings.TrimSpace("todo " + t.Reason)
	}
	return ""
}

func parseResultYAML(data []byte, d Defaults) (Output, error) {
	out := Output{Format: FormatResultYAML}
	oe := &OutputError{}
	var root any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return out, &OutputError{Lines: []string{"ResultYAML: " + oneLine(err.Error())}}
	}
	m, ok := normalize(root).(map[string]any)
	if !ok {
		return out, &OutputError{Lines: []string{"ResultYAML: the document must be a mapping with a \"results\" key"}}
	}
	raw, ok := m["results"]
	if !ok {
		return out, &OutputError{Lines: []string{"ResultYAML: no \"results\" key"}}
	}
	if raw == nil {
		return out, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return out, &OutputError{Lines: []string{"ResultYAML: \"results\" must be a list"}}
	}
	for i, item := range list {
		where := fmt.Sprintf("result %d", i+1)
		fields, ok := item.(map[string]any)
		if !ok {
			oe.add(errors.New(where + ": not a mapping"))
			continue
		}
		res, err := resultFromMap(fields, d, "", "")
		if err != nil {
			oe.add(fmt.Errorf("%s: %w", where, err))
			continue
		}
		out.Results = append(out.Results, res)
	}
	if len(oe.Lines) > 0 {
		return out, oe
	}
	return out, nil
}

// reserved are the keys a result names; all others are keyvals.
var reserved = map[string]bool{
	"item": true, "type": true, "outcome": true, "note": true, "summary": true, "results": true,
	"checkname": true, "artifact": true, "_internal": true, "details": true, "arch": true,
}

// resultFromMap builds a result from a YAML mapping. fallback is the
// outcome when the mapping has none ("" reads as NEEDS_INSPECTION). Its
// error says what is wrong, not where: the caller names the place, and
// only then (a stream of 400,000 tests spent a tenth of its reading
// writing down where each test was).
func resultFromMap(m map[string]any, d Defaults, fallback contract.Outcome, fallbackNote string) (contract.Result, error) {
	var r contract.Result
	r.Item = firstString(m["item"], d.Item)
	r.Type = firstString(m["type"], d.Type)
	if r.Item == "" {
		return r, errors.New("no item (set \"item\" or pass the item as a default)")
	}
	if r.Type == "" {
		return r, errors.New("no type (set \"type\" or pass the item type as a default)")
	}
	if v, ok := m["outcome"]; ok && v != nil {
		o, err := contract.ParseOutcome(legacyOutcome(str(v)))
		if err != nil {
			return r, err
		}
		r.Outcome = o
	} else {
		o, err := contract.ParseOutcome(string(fallback))
		if err != nil {
			return r, err
		}
		r.Outcome = o
	}
	// "summary" is the TAP era's name for "note".
	r.Note = firstString(m["note"], str(m["summary"]), fallbackNote)
	r.Artifact = str(m["artifact"])
	r.Details = m["details"]
	switch a := m["arch"].(type) {
	case nil:
		if d.Arch != "" {
			r.Arch = contract.OneArch(d.Arch)
		}
	case []any:
		names := make([]string, 0, len(a))
		for _, n := range a {
			names = append(names, str(n))
		}
		r.Arch = contract.Arches{Names: names, List: true}
	default:
		r.Arch = contract.OneArch(str(a))
	}
	check := firstString(m["checkname"], d.CheckName)
	if check == "" {
		return r, errors.New("no checkname (set \"checkname\" or pass the formula name as a default)")
	}
	r.CheckName = Namespaced(d.Namespace, check)
	if d.Namespaces != nil {
		if err := d.Namespaces.Check(r.CheckName, d.Origin); err != nil {
			return r, err
		}
	}
	var keys []string
	for k := range m {
		if !reserved[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(k, ":") {
			return r, fmt.Errorf("key %q: ResultsDB does not allow ':' in data keys", k)
		}
		if r.Extra == nil {
			r.Extra = contract.Extra{}
		}
		r.Extra[k] = m[k]
	}
	return r, nil
}

// legacyOutcome maps the ResultYAML 0.4 outcomes the runner does not know
// (reference §2.10): ERROR meant the check itself broke, WAIVED a failure
// someone accepted.
func legacyOutcome(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "ERROR":
		return string(contract.Crashed)
	case "WAIVED":
		return string(contract.Info)
	}
	return s
}

// Namespaced prefixes a checkname with the namespace unless it already
// carries it.
func Namespaced(namespace, check string) string {
	if namespace == "" || strings.HasPrefix(check, namespace+".") {
		return check
	}
	return namespace + "." + check
}

func firstString(vals ...any) string {
	for _, v := range vals {
		if s := str(v); s != "" {
			return s
		}
	}
	return ""
}

// str renders a scalar as ResultsDB stores it: as a string.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	}
	return strings.TrimSpace(fmt.Sprint(v))
}

// normalize turns YAML's map[any]any into map[string]any so that the
// values serialise as JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var yamlLine = regexp.MustCompile(`(?:yaml: )?line ([0-9]+)`)

// streamLines turns the YAML parser's line numbers, counted from a block's
// first line, into line numbers of the whole stream, so an error points at
// the line to look at.
func streamLines(msg string, offset int) string {
	return yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		if err != nil {
			return m
		}
		return fmt.Sprintf("line %d", n+offset)
	})
}
