package tap

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// perlParseErrors runs Perl's TAP::Parser (Debian's perl ships it, with
// prove) on a file and returns its parse errors, one a line.
func perlParseErrors(t *testing.T, file string) string {
	t.Helper()
	const script = `use TAP::Parser; my $p = TAP::Parser->new({source => $ARGV[0]}); 1 while $p->next; print "$_\n" for $p->parse_errors;`
	out, err := exec.Command("perl", "-e", script, file).CombinedOutput()
	if err != nil {
		t.Fatalf("TAP::Parser (Debian's perl) on %s: %v\n%s", file, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPeersAgree reads each stream of testdata/peers and checks both what
// our parser says and that TAP::Parser, run on the same file, agrees on
// whether the stream is broken. Where the peers disagree the package doc
// says which way we go and why.
func TestPeersAgree(t *testing.T) {
	cases := []struct {
		file string
		// problems is what our parser reports, one a line.
		problems string
		// perl tells whether TAP::Parser reports parse errors.
		perl bool
	}{
		{"two-versions.tap", "line 4: second version line (the first is at line 1): two TAP streams in one\n" +
			"line 5: second plan (the first is at line 2)\n" +
			"line 6: duplicate test number 1\n" +
			"line 2: plan 1..1 announces 1 tests but 2 ran", true},
		{"no-plan.tap", "no plan (1..N) in the stream", true},
		{"backwards.tap", "line 5: test number 2 out of order (after 3)", true},
		{"duplicate-hides-missing.tap", "line 5: duplicate test number 2\nline 2: 1 planned tests missing: 3", true},
		{"test-after-trailing-plan.tap", "line 5: test after the plan at line 4, which followed earlier tests\n" +
			"line 4: plan 1..2 announces 2 tests but 3 ran", true},
		{"version-after-tests.tap", "line 5: second version line (the first is at line 1): two TAP streams in one", true},
		{"gap.tap", "line 2: plan 1..3 announces 3 tests but 2 ran\nline 2: 1 planned tests missing: 2", true},
		// The lenient cases.
		{"yaml-after-comment.tap", "", false},
		{"block-scalar-dots.tap", "", false},
		{"directives.tap", "", false},
		{"noise-before-version.tap", "", false},
		{"trailing-plan.tap", "", false},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file] = true
		file := filepath.Join("testdata", "peers", c.file)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, p := parseAll(t, string(data))
		if got := problems(p); got != c.problems {
			t.Errorf("%s: our problems\n%s\nwant\n%s", c.file, got, c.problems)
		}
		perl := perlParseErrors(t, file)
		if (perl != "") != c.perl {
			t.Errorf("%s: TAP::Parser's parse errors: %q; the table says it finds errors: %v", c.file, perl, c.perl)
		}
	}
	all, _ := filepath.Glob(filepath.Join("testdata", "peers", "*.tap"))
	for _, f := range all {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s is not in the table", f)
		}
	}
}

// A YAML block after comment and blank lines is the preceding test's; the
// comment comes out first, so that the parser holds nothing but the test.
func TestYAMLAfterCommentBelongsToTheTest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "peers", "yaml-after-comment.tap"))
	if err != nil {
		t.Fatal(err)
	}
	evs, p := parseAll(t, string(data))
	if got := problems(p); got != "" {
		t.Fatalf("problems: %s", got)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind.String())
	}
	if got := strings.Join(kinds, ","); got != "version,plan,comment,test,test" {
		t.Fatalf("kinds = %s", got)
	}
	if evs[2].Text != "the diagnostics follow" || evs[2].Line != 4 {
		t.Errorf("comment = %+v", evs[2])
	}
	t1 := evs[3].Test
	if evs[3].Line != 3 || !t1.HasYAML || t1.YAML != "outcome: FAILED\nnote: found by the block\n" {
		t.Errorf("test 1 at line %d = %+v", evs[3].Line, t1)
	}
	if t2 := evs[4].Test; t2.Number != 2 || t2.HasYAML {
		t.Errorf("test 2 = %+v", t2)
	}
	// Any other line in between ends the test: the block is then unknown
	// lines, as every peer reads it.
	evs, _ = parseAll(t, "1..1\nok 1\nnoise\n  ---\n  a: 1\n  ...\n")
	if len(evs) != 6 || evs[1].Test.HasYAML || evs[3].Kind != KindUnknown {
		t.Errorf("events = %+v", evs)
	}
}

func TestBlockScalarWithDotsStaysWhole(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "peers", "block-scalar-dots.tap"))
	if err != nil {
		t.Fatal(err)
	}
	evs, p := parseAll(t, string(data))
	if got := problems(p); got != "" || len(evs) != 3 {
		t.Fatalf("problems %q, events %+v", got, evs)
	}
	if want := "outcome: FAILED\ndetails:\n  output: |\n    line one\n    ...\n    line three\n"; evs[2].Test.YAML != want {
		t.Errorf("YAML = %q, want %q", evs[2].Test.YAML, want)
	}
}

func TestProblemCodes(t *testing.T) {
	cases := []struct {
		in   string
		want []ProblemCode
	}{
		{"TAP version 13\n1..1\nok 1\nTAP version 13\n", []ProblemCode{ProblemVersion}},
		{"ok 1\n", []ProblemCode{ProblemPlan}},
		{"1..3\nok 1\nok 2\nok 2\n", []ProblemCode{ProblemNumber, ProblemMissing}},
		{"1..3\nok 1\n", []ProblemCode{ProblemCount, ProblemMissing}},
		{"1..1\nok 1\n  ---\n  a: 1\n", []ProblemCode{ProblemYAML}},
	}
	for _, c := range cases {
		_, p := parseAll(t, c.in)
		var got []ProblemCode
		for _, pr := range p.Problems() {
			got = append(got, pr.Code)
		}
		if strings.Join(codes(got), ",") != strings.Join(codes(c.want), ",") {
			t.Errorf("%q: codes %v, want %v", c.in, got, c.want)
		}
	}
}

func codes(cs []ProblemCode) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}
