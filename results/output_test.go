package results

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseOutputTAP(t *testing.T) {
	rs, err := ParseOutput(readFile(t, "testdata/rpmlint.tap"), Defaults{CheckName: "rpmlint", Namespace: "dist", Item: "ignored", Type: "koji_build"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d results, want 2", len(rs))
	}
	r := rs[0]
	if r.CheckName != "dist.rpmlint" || r.Outcome != contract.Failed || r.Item != "xchat-0.5-1.fc20" || r.Note != "5 errors, 10 warnings" || r.Arch.String() != "x86_64" {
		t.Errorf("first result = %+v", r)
	}
	det, _ := r.Details.(map[string]any)
	if !strings.Contains(det["output"].(string), "explicit-lib-dependency") {
		t.Errorf("details lost: %#v", r.Details)
	}
	// No outcome in YAML: "ok" means PASSED; unknown keys become keyvals.
	if rs[1].Outcome != contract.Passed || rs[1].Extra["scenario"] != "srpm" || rs[1].Arch.String() != "src" {
		t.Errorf("second result = %+v", rs[1])
	}
}

func TestParseOutputOldTAPWithSummaryAndCRLF(t *testing.T) {
	rs, err := ParseOutput(readFile(t, "testdata/depcheck-crlf.tap"), Defaults{CheckName: "depcheck", Namespace: "dist"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("got %d results", len(rs))
	}
	r := rs[0]
	if r.Note != "openstack-zaqar-2014.2-0.3.b3.fc21 into F21 testing" || r.Type != "bodhi_update" || r.Outcome != contract.Failed || r.CheckName != "dist.depcheck" {
		t.Errorf("result = %+v", r)
	}
	if strings.Contains(r.Details.(map[string]any)["output"].(string), "\r") {
		t.Errorf("CR kept in details")
	}
}

func TestParseOutputResultYAML(t *testing.T) {
	rs, err := ParseOutput(readFile(t, "testdata/results.yml"), Defaults{CheckName: "python-versions", Namespace: "dist", Arch: "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d results", len(rs))
	}
	if rs[0].CheckName != "dist.python-versions.two_three" || rs[0].Artifact != "output/two_three.log" || !rs[0].Arch.List || rs[0].Arch.String() != "x86_64,noarch" {
		t.Errorf("first = %+v", rs[0])
	}
	if rs[1].CheckName != "dist.python-versions.naming_scheme" || rs[1].Outcome != contract.NeedsInspection || rs[1].Arch.String() != "x86_64" {
		t.Errorf("second = %+v", rs[1])
	}
	if _, ok := rs[1].Extra["_internal"]; ok {
		t.Errorf("_internal must not become a keyval")
	}
}

func TestParseOutputTAPDirectivesAndDefaults(t *testing.T) {
	in := "TAP version 13\n1..4\nok 1 - a\nnot ok 2 - b\nok 3 - c # SKIP no network\nnot ok 4 - d # TODO later\n"
	rs, err := ParseOutput([]byte(in), Defaults{CheckName: "dist.mytask", Namespace: "dist", Item: "foo-1-1.fc40", Type: "koji_build", Arch: "noarch"})
	if err != nil {
		t.Fatal(err)
	}
	want := []contract.Outcome{contract.Passed, contract.Failed, contract.Info, contract.Info}
	for i, r := range rs {
		if r.Outcome != want[i] || r.Item != "foo-1-1.fc40" || r.CheckName != "dist.mytask" || r.Arch.String() != "noarch" {
			t.Errorf("result %d = %+v", i, r)
		}
	}
	if rs[2].Note != "skipped no network" {
		t.Errorf("skip note = %q", rs[2].Note)
	}
}

func TestParseOutputSkippedPlanGivesAResult(t *testing.T) {
	rs, err := ParseOutput([]byte("TAP version 13\n1..0 # SKIP not a python package\n"), Defaults{CheckName: "python-versions", Item: "x-1-1", Type: "koji_build"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Outcome != contract.Info || !strings.Contains(rs[0].Note, "not a python package") {
		t.Fatalf("results = %+v", rs)
	}
}

func TestParseOutputErrorsKeepValidResults(t *testing.T) {
	in := "TAP version 13\n1..3\nok 1\n  ---\n  outcome: WHATEVER\n  ...\nok 2\n"
	rs, err := ParseOutput([]byte(in), Defaults{CheckName: "t", Item: "i", Type: "koji_build"})
	var oe *OutputError
	if !errors.As(err, &oe) || len(oe.Lines) != 2 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(oe.Lines[0], "test 1 (line 3)") || !strings.Contains(oe.Lines[0], "WHATEVER") {
		t.Errorf("first line = %q", oe.Lines[0])
	}
	if !strings.Contains(oe.Lines[1], "3 tests but only 2 ran") {
		t.Errorf("second line = %q", oe.Lines[1])
	}
	if len(rs) != 1 || rs[0].Outcome != contract.Passed {
		t.Errorf("results = %+v", rs)
	}
}

// TestParseOutputYAMLErrorNamesTheStreamLine: a broken YAML block is
// reported at the line of the stream where it breaks, not at a line
// number counted inside the block.
func TestParseOutputYAMLErrorNamesTheStreamLine(t *testing.T) {
	in := "TAP version 13\n1..1\nok 1\n  ---\n  item: x\n  outcome: [\n  ...\n"
	_, err := ParseOutput([]byte(in), Defaults{CheckName: "t", Type: "koji_build"})
	var oe *OutputError
	if !errors.As(err, &oe) || len(oe.Lines) != 1 {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(oe.Lines[0], "test 1 (line 3): YAML block: line 6: ") {
		t.Errorf("error = %q, want it to name line 6, where the block breaks", oe.Lines[0])
	}
}

func TestParseOutputRejectsOtherInput(t *testing.T) {
	for _, in := range []string{"", "hello world\n", "results: 5\n", "[1, 2]\n", "results:\n  - just a string\n"} {
		if _, err := ParseOutput([]byte(in), Defaults{CheckName: "t", Item: "i", Type: "koji_build"}); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	rs, err := ParseOutput([]byte("results: []\n"), Defaults{})
	if err != nil || len(rs) != 0 {
		t.Errorf("empty results: %v %v", rs, err)
	}
}

func TestNamespaces(t *testing.T) {
	ns := &Namespaces{Safe: []string{"scratch"}, Whitelist: map[string][]string{"dist": {"git://mirror/fedoraqa/rpmlint/"}}}
	d := Defaults{CheckName: "rpmlint", Namespace: "dist", Item: "i", Type: "koji_build", Namespaces: ns}
	d.Origin = "git://mirror/fedoraqa/rpmlint/"
	if _, err := ParseOutput([]byte("1..1\nok\n"), d); err != nil {
		t.Errorf("allowed origin: %v", err)
	}
	d.Origin = "https://evil.example/rpmlint"
	if _, err := ParseOutput([]byte("1..1\nok\n"), d); !errors.Is(err, ErrNamespace) || !strings.Contains(err.Error(), "not allowed to post results into the \"dist\" namespace") {
		t.Errorf("foreign origin: %v", err)
	}
	d.Namespace = "scratch"
	if _, err := ParseOutput([]byte("1..1\nok\n"), d); err != nil {
		t.Errorf("safe namespace: %v", err)
	}
	d.Namespace = "pkg"
	if _, err := ParseOutput([]byte("1..1\nok\n"), d); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Errorf("unknown namespace: %v", err)
	}
}

func TestParseOutputTAPAfterNoise(t *testing.T) {
	in := "Running rpmlint on 1 package...\nTAP version 13\n1..1\nok 1 - fine\n"
	out, err := ParseOutputDetail([]byte(in), Defaults{CheckName: "rpmlint", Item: "x-1-1", Type: "koji_build"})
	if err != nil || out.Format != FormatTAP || len(out.Results) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	// A YAML document with an "ok" key is not TAP.
	out, err = ParseOutputDetail([]byte("ok: true\nresults: []\n"), Defaults{})
	if err != nil || out.Format != FormatResultYAML {
		t.Fatalf("%+v %v", out, err)
	}
}

func TestParseOutputLegacyOutcomes(t *testing.T) {
	in := "results:\n  - {item: a, type: t, checkname: c, outcome: error}\n  - {item: a, type: t, checkname: c, outcome: WAIVED}\n"
	rs, err := ParseOutput([]byte(in), Defaults{})
	if err != nil || len(rs) != 2 || rs[0].Outcome != contract.Crashed || rs[1].Outcome != contract.Info {
		t.Fatalf("%+v %v", rs, err)
	}
}

// TestParseOutputBrokenTAPIsAnError: a stream that breaks the protocol is
// broken output, even when every test line says ok; the error names the
// line to look at, and the results that could be read are still there.
func TestParseOutputBrokenTAPIsAnError(t *testing.T) {
	d := Defaults{CheckName: "c", Item: "x-1-1", Type: "koji_build"}
	cases := []struct{ name, in, want string }{
		{"two version lines", "TAP version 13\n1..1\nok 1 - a\nTAP version 13\n1..1\nok 1 - b\n",
			"line 4: second version line (the first is at line 1): two TAP streams in one; line 5: second plan (the first is at line 2); " +
				"line 6: duplicate test number 1; line 2: plan 1..1 announces 1 tests but 2 ran"},
		{"no plan", "TAP version 13\nok 1 - a\nok 2 - b\n", "no plan (1..N) in the stream"},
		{"numbers going backwards", "TAP version 13\n1..3\nok 1\nok 3\nok 2\n", "line 5: test number 2 out of order (after 3)"},
		{"a duplicate hiding a missing test", "TAP version 13\n1..3\nok 1\nok 2\nok 2\n",
			"line 5: duplicate test number 2; line 2: 1 planned tests missing: 3"},
		{"tests after a trailing plan", "TAP version 13\nok 1\nok 2\n1..2\nok 3\n",
			"line 5: test after the plan at line 4, which followed earlier tests; line 4: plan 1..2 announces 2 tests but 3 ran"},
		{"a short plan with a gap", "TAP version 13\n1..3\nok 1\nok 3\n",
			"line 2: TAP plan 1..3 announces 3 tests but only 2 ran (1 planned tests missing: 2)"},
	}
	for _, c := range cases {
		out, err := ParseOutputDetail([]byte(c.in), d)
		var oe *OutputError
		if !errors.As(err, &oe) {
			t.Errorf("%s: err = %v, want an OutputError", c.name, err)
			continue
		}
		if got := strings.Join(oe.Lines, "; "); got != c.want {
			t.Errorf("%s: error lines\n%s\nwant\n%s", c.name, got, c.want)
		}
		if len(out.Results) == 0 || out.Results[0].Outcome != contract.Passed || len(out.Problems) == 0 {
			t.Errorf("%s: the readable results and the problems must stay: %+v", c.name, out)
		}
	}
}

// TestParseOutputLenientTAP: what the peers accept stays accepted.
func TestParseOutputLenientTAP(t *testing.T) {
	d := Defaults{CheckName: "c", Item: "x-1-1", Type: "koji_build"}
	in := "TAP version 13\n1..6\n" +
		"ok 1 - a # SKIP no network\nok 2 - b # skipped: no network\nnot ok 3 - c # TODO later\nnot ok 4 - d # todo: later\n" +
		"not ok 5 - e\n# the block follows a comment\n\n  ---\n  outcome: NEEDS_INSPECTION\n  details:\n    output: |\n      one\n      ...\n      three\n  ...\n" +
		"ok - unnumbered\n"
	out, err := ParseOutputDetail([]byte(in), d)
	if err != nil || len(out.Problems) != 0 {
		t.Fatalf("err %v, problems %v", err, out.Problems)
	}
	want := []contract.Outcome{contract.Info, contract.Info, contract.Info, contract.Info, contract.NeedsInspection, contract.Passed}
	if len(out.Results) != len(want) {
		t.Fatalf("results = %+v", out.Results)
	}
	for i, r := range out.Results {
		if r.Outcome != want[i] {
			t.Errorf("result %d: %s, want %s", i+1, r.Outcome, want[i])
		}
	}
	if det, _ := out.Results[4].Details.(map[string]any); det["output"] != "one\n...\nthree\n" {
		t.Errorf("details = %#v", out.Results[4].Details)
	}
}

// A stream numbered at random still gives a one-line error of bounded length.
func TestParseOutputManyProblemsStayOneShortLine(t *testing.T) {
	var b strings.Builder
	b.WriteString("TAP version 13\n1..500\n")
	for i := 500; i >= 1; i-- {
		fmt.Fprintf(&b, "ok %d\n", i)
	}
	_, err := ParseOutput([]byte(b.String()), Defaults{CheckName: "c", Item: "x-1-1", Type: "koji_build"})
	var oe *OutputError
	if !errors.As(err, &oe) || len(oe.Lines) != maxProtocolLines+1 || oe.Lines[maxProtocolLines] != "489 more TAP protocol problems" {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 2000 {
		t.Errorf("error is %d bytes: %s", len(msg), msg)
	}
}
