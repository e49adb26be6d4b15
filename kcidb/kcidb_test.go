package kcidb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readDoc(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Every schema document compiles, and each version's own minimal
// document passes.
func TestEverySchemaCompiles(t *testing.T) {
	if _, err := compiled(); err != nil {
		t.Fatal(err)
	}
	for _, v := range Versions() {
		doc := `{"version": {"major": ` + itoa(v.Major) + `, "minor": ` + itoa(v.Minor) + `}}`
		sub, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		if sub.Version != v || sub.Upgraded != (v != Latest) {
			t.Errorf("%s: version %s upgraded %v", v, sub.Version, sub.Upgraded)
		}
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestParseLatest(t *testing.T) {
	sub, err := Parse(readDoc(t, "v5.3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Version != Latest || sub.Upgraded || len(sub.Checkouts) != 1 || len(sub.Builds) != 1 || len(sub.Tests) != 4 {
		t.Fatalf("%+v", sub)
	}
	b, t1, t4 := sub.Builds[0], sub.Tests[0], sub.Tests[3]
	if b.Architecture != "x86_64" || b.Status != "PASS" || *b.Duration != 812.5 || sub.Checkouts[0].GitCommitName != "v6.12-rc1" {
		t.Errorf("build %+v checkout %+v", b, sub.Checkouts[0])
	}
	if t1.Path != "ltp.sem01" || !t1.HasPath || t1.Environment.Comment != "QEMU x86_64" || t1.Environment.Compatible[0] != "qemu,x86_64" {
		t.Errorf("test 1 %+v", t1)
	}
	if t4.HasPath || t4.Number == nil || t4.Number.Value != 1.5e6 || t4.Number.Unit != "B/s" {
		t.Errorf("test 4 %+v", t4)
	}
}

// A v4 document is checked as v4, then upgraded as KCIDB does: a build's
// valid becomes its status, contacts go, waived is kept aside.
func TestUpgradeFromV4(t *testing.T) {
	sub, err := Parse(readDoc(t, "v4.5.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Version != (Version{4, 5}) || !sub.Upgraded {
		t.Errorf("version %s upgraded %v", sub.Version, sub.Upgraded)
	}
	if sub.Builds[0].Status != "FAIL" {
		t.Errorf("build valid:false became status %q, want FAIL", sub.Builds[0].Status)
	}
	if w := sub.Tests[0].Waived; w == nil || !*w {
		t.Errorf("waived: %v", w)
	}
	// v4 allowed git:// URLs and paths with empty parts; v5 does not.
	for _, c := range []struct{ doc, path, want string }{
		{`{"version":{"major":4},"checkouts":[{"id":"a:1","origin":"a","git_repository_url":"git://example.org/l.git"}]}`,
			"$.checkouts[0].git_repository_url", "https://"},
		{`{"version":{"major":4,"minor":2},"tests":[{"id":"a:1","origin":"a","build_id":"a:2","path":"ltp..x"}]}`,
			"$.tests[0].path", "ambiguous"},
		{`{"version":{"major":4,"minor":5},"tests":[{"id":"a:1","origin":"a","build_id":"a:2","comment":"nul \u0000 here"}]}`,
			"$.tests[0].comment", "after upgrading 4.5 to 5.3"},
	} {
		_, err := Parse([]byte(c.doc))
		var kerr *Error
		if !errors.As(err, &kerr) || kerr.Path != c.path || !strings.Contains(kerr.Msg, c.want) {
			t.Errorf("%s:\n got %v\nwant %s: …%s…", c.doc, err, c.path, c.want)
		}
	}
}

// An older minor is checked against its own schema: a field that came in
// a later minor is refused, and the document is otherwise upgraded.
func TestOlderMinor(t *testing.T) {
	sub, err := Parse(readDoc(t, "v5.0.json"))
	if err != nil || sub.Version != (Version{5, 0}) || !sub.Upgraded || sub.Tests[0].Status != "SKIP" {
		t.Fatalf("%+v %v", sub, err)
	}
	doc := strings.Replace(string(readDoc(t, "v5.3.json")), `"minor": 3`, `"minor": 2`, 1)
	_, err = Parse([]byte(doc))
	if err == nil || err.Error() != "$.tests[1]: additional properties 'input_files' not allowed" {
		t.Errorf("a 5.3 field in a 5.2 document: %v", err)
	}
}

// Each bad document gets one line naming the path of its first bad field.
func TestErrorsNameThePath(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{``, "$: the document is empty; send a KCIDB I/O JSON object"},
		{`{"version": `, "$: not valid JSON: unexpected EOF"},
		{`[]`, "$: the document must be a JSON object"},
		{`{} {}`, "$: more than one JSON value"},
		{`{"tests": []}`, `$: missing property 'version' ({"major": 5, "minor": 3}); supported: 4.0 to 5.3`},
		{`{"version": 5}`, `$.version: want an object like {"major": 5, "minor": 3}`},
		{`{"version": {"minor": 1}}`, "$.version: missing property 'major'"},
		{`{"version": {"major": "5"}}`, "$.version.major: want a whole number"},
		{`{"version": {"major": 3, "minor": 0}}`, "$.version.major: version 3 is not supported; supported: 4.0 to 5.3"},
		{`{"version": {"major": 5, "minor": 9}}`, "$.version.minor: version 5.9 is not supported; supported: 4.0 to 5.3"},
		{`{"version": {"major": 5, "minor": 3, "patch": 1}}`, "$.version: additional properties 'patch' not allowed"},
		{`{"version": {"major": 5}, "tests": [{"id": "a:1", "origin": "a", "build_id": "a:2"}, {"id": "a:2", "origin": "a", "build_id": "a:2", "status": "OK"}]}`,
			"$.tests[1].status: value must be one of 'FAIL', 'ERROR', 'MISS', 'PASS', 'DONE', 'SKIP'"},
		{`{"version": {"major": 5}, "tests": [{"id": "a:1", "origin": "a"}]}`, "$.tests[0]: missing property 'build_id'"},
		{`{"version": {"major": 5}, "builds": [{"id": "nocolon", "origin": "a", "checkout_id": "a:1"}]}`,
			"$.builds[0].id: 'nocolon' does not match pattern '^[a-z0-9_]+:[^\\\\0]*$'"},
		{`{"version": {"major": 5}, "tests": [{"id": "a:1", "origin": "a", "build_id": "a:2", "start_time": "yesterday"}]}`,
			"$.tests[0].start_time: 'yesterday' is not valid date-time"},
		{`{"version": {"major": 5}, "tests": [{"id": "a:2", "origin": "a", "build_id": "a:2", "status": "PASS", "log_url": "x"}, {"id": "a:1"}]}`,
			"$.tests[0].log_url: 'x' is not valid uri"},
	} {
		_, err := Parse([]byte(c.doc))
		var kerr *Error
		if !errors.As(err, &kerr) || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s:\n got %v\nwant %s", c.doc, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"v5.3.json", "v4.5.json", "v5.0.json"} {
		f.Add(readDoc(f, name))
	}
	f.Add([]byte(`{"version":{"major":4},"builds":[{"id":"a:1","origin":"a","checkout_id":"a:2","valid":true}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sub, err := Parse(raw)
		if err != nil {
			var kerr *Error
			if !errors.As(err, &kerr) {
				t.Fatalf("error %T is not a document error: %v", err, err)
			}
			if !strings.HasPrefix(kerr.Path, "$") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error without a path on one line: %q", err)
			}
			return
		}
		// What Parse lets through is what the store relies on.
		for _, tst := range sub.Tests {
			if !strings.Contains(tst.ID, ":") || tst.Origin == "" || !strings.Contains(tst.BuildID, ":") {
				t.Fatalf("test %+v let through", tst)
			}
			if strings.ContainsRune(tst.Path+tst.Comment+tst.Status, 0) {
				t.Fatalf("NUL let through: %+v", tst)
			}
		}
		for _, b := range sub.Builds {
			if !strings.Contains(b.ID, ":") || b.Origin == "" {
				t.Fatalf("build %+v let through", b)
			}
		}
	})
}
