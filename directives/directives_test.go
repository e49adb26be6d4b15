package directives

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

func testEnv(t *testing.T) *Env {
	t.Helper()
	root := t.TempDir()
	e := &Env{TaskDir: filepath.Join(root, "task"), WorkDir: filepath.Join(root, "work"), ArtifactsDir: filepath.Join(root, "artifacts"), Config: config.Default(), ActionName: "test"}
	for _, d := range []string{e.TaskDir, e.WorkDir, e.ArtifactsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.Vars = map[string]any{"item": "pkg-1-1.fc40", "type": "koji_build", "arch": "x86_64", "checkname": "mycheck", "namespace": "dist", "artifactsdir": e.ArtifactsDir}
	return e
}

func call(t *testing.T, name string, params map[string]any, env *Env) (any, error) {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("directive %s not registered", name)
	}
	if _, raw := d.(Unexpanded); !raw {
		v, err := env.Expand(params)
		if err != nil {
			return nil, err
		}
		params = v.(map[string]any)
	}
	return d.Run(context.Background(), params, env)
}

func TestRegistered(t *testing.T) {
	for _, n := range []string{"shell", "python", "exitcode", "dummy", "resultsdb", "xunit", "create_report"} {
		if _, ok := Lookup(n); !ok {
			t.Errorf("%s is not registered", n)
		}
	}
}

func TestShellErrors(t *testing.T) {
	env := testEnv(t)
	cases := map[string]map[string]any{
		"has an unquoted \";\"":                 {BareParam: []any{"echo a; echo b"}},
		"exited with status 3: oops":            {BareParam: []any{[]any{"sh", "-c", "echo oops >&2; exit 3"}}},
		"give either argv or shell with script": {BareParam: []any{map[string]any{"script": "x"}}},
		"unknown key \"cmd\"":                   {BareParam: []any{map[string]any{"cmd": "x"}}},
		"no commands given":                     {BareParam: []any{}},
		"no-such-binary":                        {BareParam: []any{"no-such-binary-xyz"}},
		"is a mapping, not an argument":         {BareParam: []any{[]any{"echo", "${m}"}}},
	}
	env.Vars["m"] = map[string]any{"a": 1}
	for want, params := range cases {
		_, err := call(t, "shell", params, env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	out, err := call(t, "shell", map[string]any{BareParam: []any{map[string]any{"argv": []any{"sh", "-c", "exit 1"}, "ok_exit": []any{0, 1}}, "printf 'a b'"}}, env)
	if err != nil || out != "a b" {
		t.Fatalf("ok_exit: %q %v", out, err)
	}
	// A list-valued variable is several arguments.
	env.Vars["rpms"] = []any{"a.rpm", "b c.rpm"}
	var logged bytes.Buffer
	env.Stdout = &logged
	out, err = call(t, "shell", map[string]any{"commands": []any{"printf '<%s>' ${rpms}"}, "env": map[string]any{"X": "${item}"}}, env)
	if err != nil || out != "<a.rpm><b c.rpm>" || logged.String() != out {
		t.Fatalf("list expansion: %q %v (logged %q)", out, err, logged.String())
	}
}

func TestPython(t *testing.T) {
	env := testEnv(t)
	os.WriteFile(filepath.Join(env.TaskDir, "helper.py"), []byte("def twice(x):\n    return x * 2\n"), 0o644)
	os.WriteFile(filepath.Join(env.TaskDir, "check.py"), []byte(`import sys
from helper import twice
if __name__ == "__main__":
    raise SystemExit("main block ran")
def run(koji_build, n=1):
    print("noise on stdout")
    return "results:\n  - {item: %s, type: koji_build, outcome: PASSED, count: %d}\n" % (koji_build, twice(n))
def data():
    return {"a": [1, 2.5, None, True]}
def boom():
    raise ValueError("bad input here")
`), 0o644)
	os.WriteFile(filepath.Join(env.WorkDir, "x.py"), []byte("def run():\n    return 1\n"), 0o644)
	out, err := call(t, "python", map[string]any{"file": "check.py", "callable": "run", "koji_build": "${item}", "n": 2}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := out.(string); !strings.Contains(s, "item: pkg-1-1.fc40") || !strings.Contains(s, "count: 4") {
		t.Fatalf("return: %q", out)
	}
	out, err = call(t, "python", map[string]any{"file": "check.py", "callable": "data"}, env)
	m, _ := out.(map[string]any)
	if err != nil || m == nil || len(m["a"].([]any)) != 4 || m["a"].([]any)[0] != 1 {
		t.Fatalf("structured return: %#v %v", out, err)
	}
	for want, params := range map[string]map[string]any{
		"ValueError: bad input here":   {"file": "check.py", "callable": "boom"},
		"has no callable named nope":   {"file": "check.py", "callable": "nope"},
		"unexpected keyword argument":  {"file": "check.py", "callable": "data", "x": 1},
		"outside the task":             {"file": "../work/x.py", "callable": "run"},
		"must be relative":             {"file": "/etc/passwd", "callable": "run"},
		"python needs file":            {"callable": "run"},
		"file \"missing.py\" does not": {"file": "missing.py", "callable": "run"},
	} {
		_, err := call(t, "python", params, env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

func TestResultsdbDirective(t *testing.T) {
	env := testEnv(t)
	out, err := call(t, "resultsdb", map[string]any{"results": "TAP version 13\n1..2\nok 1 - a\nnot ok 2 - b\n  ---\n  outcome: NEEDS_INSPECTION\n  ...\n"}, env)
	if err != nil {
		t.Fatal(err)
	}
	rs := env.Results()
	if len(rs) != 2 || rs[0].CheckName != "dist.mycheck" || rs[0].Item != "pkg-1-1.fc40" || rs[1].Outcome != contract.NeedsInspection || rs[0].Arch.String() != "x86_64" {
		t.Fatalf("results: %+v", rs)
	}
	if s, _ := out.(string); !strings.HasPrefix(s, "results:") {
		t.Fatalf("return: %q", out)
	}
	// Valid results are handed over even when others are broken.
	env2 := testEnv(t)
	_, err = call(t, "resultsdb", map[string]any{"results": "results:\n  - {item: a, type: koji_build, outcome: PASSED}\n  - {item: b, type: koji_build, outcome: WHATEVER}\n"}, env2)
	if err == nil || len(env2.Results()) != 1 {
		t.Fatalf("partial: %v %+v", err, env2.Results())
	}
	os.WriteFile(filepath.Join(env.WorkDir, "r.yml"), []byte("results: []\n"), 0o644)
	if _, err := call(t, "resultsdb", map[string]any{"file": filepath.Join(env.WorkDir, "r.yml")}, env); err != nil {
		t.Fatal(err)
	}
	for want, params := range map[string]map[string]any{
		"not both":         {"results": "x", "file": "y"},
		"results or file":  {},
		"outside the task": {"file": "/etc/passwd"},
		"neither TAP13":    {"results": "hello"},
	} {
		if _, err := call(t, "resultsdb", params, testEnv(t)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

func TestExitcodeAndDummy(t *testing.T) {
	env := testEnv(t)
	if _, err := call(t, "exitcode", map[string]any{"result_last": "x", "result_worst": "y"}, env); err == nil {
		t.Error("both params accepted")
	}
	if v, err := call(t, "exitcode", map[string]any{"result_worst": "results: [{outcome: INFO}, {outcome: PASSED}]"}, env); err != nil || v != 0 || env.ExitCode() != 0 {
		t.Fatalf("%v %v", v, err)
	}
	if v, _ := call(t, "exitcode", map[string]any{"result_last": "results: [{outcome: FAILED}, {outcome: PASSED}]"}, env); v != 0 {
		t.Fatalf("last: %v", v)
	}
	if v, _ := call(t, "exitcode", map[string]any{"result_worst": "results: [{outcome: ABORTED}, {outcome: PASSED}]"}, env); v != 100 || env.ExitCode() != 100 {
		t.Fatalf("worst: %v", v)
	}
	if v, _ := call(t, "exitcode", map[string]any{"result_worst": []any{map[string]any{"outcome": "PASSED"}}}, env); v != 0 || env.ExitCode() != 100 {
		t.Fatalf("a later 0 lowered the exit code: %v %d", v, env.ExitCode())
	}
	if v, err := call(t, "dummy", map[string]any{"result": "pass", "msg": "hello"}, env); v != "hello" || err != nil {
		t.Fatalf("dummy: %v %v", v, err)
	}
	if _, err := call(t, "dummy", map[string]any{"result": "fail"}, env); err == nil {
		t.Fatal("dummy FAIL did not fail")
	}
}

func TestXunit(t *testing.T) {
	env := testEnv(t)
	junit := filepath.Join(env.ArtifactsDir, "junit.xml")
	os.WriteFile(junit, []byte(`<?xml version="1.0"?>
<testsuites><testsuite name="s">
<testcase classname="c" name="one"/>
<testcase name="two"><failure message="boom">trace</failure></testcase>
<testsuite name="inner"><testcase name="three"><skipped/></testcase><testcase name="four"><error>e1
e2</error></testcase></testsuite>
</testsuite></testsuites>`), 0o644)
	out, err := call(t, "xunit", map[string]any{"item": "${item}", "type": "koji_build", "checkname": "xt", "file": junit}, env)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(string)
	for _, want := range []string{"outcome: FAILED", "note: 1 PASSED, 1 INFO, 2 FAILED", "checkname: dist.xt", "artifact: junit.xml"} {
		if !strings.Contains(s, want) {
			t.Errorf("allpass: missing %q in\n%s", want, s)
		}
	}
	out, err = call(t, "xunit", map[string]any{"item": "${item}", "type": "koji_build", "checkname": "xt", "file": junit, "aggregation": "none"}, env)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := parseResults([]byte(out.(string)), env)
	if err != nil || len(rs) != 4 || rs[1].CheckName != "dist.xt.two" || rs[1].Note != "boom" || rs[3].Note != "e1" || rs[2].Outcome != contract.Info {
		t.Fatalf("none: %v %+v", err, rs)
	}
	for _, bad := range []string{"<html/>", "not xml", "<testsuite><testcase></testsuite>", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><testsuite><testcase name="&e;"/></testsuite>`} {
		if _, err := ParseJUnit([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCreateReport(t *testing.T) {
	env := testEnv(t)
	out, err := call(t, "create_report", map[string]any{"results": "results:\n  - {item: '<b>x</b>', type: koji_build, outcome: FAILED, note: n}\n", "artifactsdir": "${artifactsdir}"}, env)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(out.(string))
	if !strings.Contains(string(html), "&lt;b&gt;x&lt;/b&gt;") || !strings.Contains(string(html), `class="FAILED"`) {
		t.Fatalf("report:\n%s", html)
	}
	for want, params := range map[string]map[string]any{
		"artifactsdir is required":  {"results": "results: []"},
		"outside the task":          {"results": "results: []", "artifactsdir": env.WorkDir},
		"must be a plain name":      {"results": "results: []", "artifactsdir": "${artifactsdir}", "path": "../x.html"},
		"template: file \"t.html\"": {"results": "results: []", "artifactsdir": "${artifactsdir}", "template": "t.html"},
	} {
		if _, err := call(t, "create_report", params, env); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	// Through a symlink the task made, a report would land outside.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(env.ArtifactsDir, "out"))
	os.Symlink(filepath.Join(outside, "r.html"), filepath.Join(env.ArtifactsDir, "r.html"))
	for _, path := range []string{"out/r.html", "r.html"} {
		if _, err := call(t, "create_report", map[string]any{"results": "results: []", "artifactsdir": "${artifactsdir}", "path": path}, env); err == nil {
			t.Errorf("path %s: report written through a symlink", path)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("report written outside the artifacts: %v", ents)
	}
	if _, err := call(t, "create_report", map[string]any{"results": "results: []", "artifactsdir": "${artifactsdir}", "path": "v1..2.html"}, env); err != nil {
		t.Errorf("a name with two dots in it: %v", err)
	}
	os.WriteFile(filepath.Join(env.TaskDir, "t.html"), []byte("{{len .Results}} for {{.Item}}"), 0o644)
	out, err = call(t, "create_report", map[string]any{"results": "results: [{outcome: PASSED}]", "artifactsdir": "${artifactsdir}", "template": "t.html", "path": "sub/r.html"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if html, _ := os.ReadFile(out.(string)); string(html) != "1 for pkg-1-1.fc40" {
		t.Fatalf("custom template: %q", html)
	}
}

func FuzzParseJUnit(f *testing.F) {
	f.Add([]byte(`<testsuites><testsuite><testcase name="a"><failure message="m"/></testcase></testsuite></testsuites>`))
	f.Add([]byte(`<testsuite><testsuite><testcase name="b"><skipped/></testcase></testsuite></testsuite>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := ParseJUnit(data)
		if err != nil {
			return
		}
		for _, c := range cases {
			if _, err := contract.ParseOutcome(string(c.Outcome)); err != nil {
				t.Fatalf("bad outcome %q", c.Outcome)
			}
			if strings.Contains(c.Message, "\n") {
				t.Fatalf("multi-line message %q", c.Message)
			}
		}
	})
}
