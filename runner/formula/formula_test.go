package formula

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const pyver = `name: python-versions
namespace: dist
desc: |
  Download specified Koji build and check each RPM
maintainer: churchyard
input:
    args:
        - koji_build
environment:
    rpm:
        - rpm-python
actions:
    - name: download rpms from koji
      koji:
        action: download
        koji_build: ${koji_build}
        arch: ['all']
        src: True
    - name: check each rpm for python dependencies
      python:
          file: python_versions_check.py
          callable: run
          workdir: ${workdir}
      export: python_versions_output
    - name: report results to resultsdb
      resultsdb:
          results: ${python_versions_output}
`

func TestParseRealFormula(t *testing.T) {
	f, err := Parse("runtask.yml", []byte(pyver))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "python-versions" || f.Namespace != "dist" || f.Maintainer != "churchyard" {
		t.Fatalf("header: %+v", f)
	}
	if len(f.Args) != 1 || f.Args[0].Names[0] != "koji_build" {
		t.Fatalf("args: %+v", f.Args)
	}
	if len(f.Actions) != 3 {
		t.Fatalf("actions: %d", len(f.Actions))
	}
	a := f.Actions[0]
	if a.Directive != "koji" || a.Line != 13 {
		t.Fatalf("action 1: %+v", a)
	}
	p := a.Params.(map[string]any)
	if p["src"] != true || !reflect.DeepEqual(p["arch"], []any{"all"}) {
		t.Fatalf("params: %#v", p)
	}
	if f.Actions[1].Export != "python_versions_output" {
		t.Fatalf("export: %+v", f.Actions[1])
	}
	if !reflect.DeepEqual(f.Environment["rpm"], []any{"rpm-python"}) {
		t.Fatalf("environment: %#v", f.Environment)
	}
}

func TestParseLegacyTaskKeyAndAlternatives(t *testing.T) {
	f, err := Parse("old.yml", []byte("name: t\ninput:\n  args: [[koji_build, bodhi_update], arch]\ntask:\n  - shell: [echo hi]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Actions) != 1 || f.Actions[0].Directive != "shell" || f.Actions[0].Name != "shell (action 1)" {
		t.Fatalf("%+v", f.Actions)
	}
	if got := f.Args[0].String(); got != "koji_build or bodhi_update" {
		t.Fatal(got)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ src, want string }{
		{"name: x\nactions:\n  - name: a\n    shell: [x]\n    python: {}\n", "f.yml:3: action 1 has more than one directive (shell, python)"},
		{"name: x\nactions:\n  - name: a\n", "f.yml:3: action 1 has no directive"},
		{"desc: x\nactions:\n  - shell: [x]\n", "f.yml:1: formula has no name"},
		{"name: x\n", "f.yml:1: formula has no actions"},
		{"name: x\nactions: {a: 1}\n", "f.yml:2: actions must be a list"},
		{"name: x\nactions:\n  - shell: [x]\n    export: 'a b'\n", "f.yml:4: export \"a b\" is not a variable name"},
		{"name: x\ninput:\n  args: koji_build\nactions:\n  - shell: [x]\n", "f.yml:3: input.args must be a list"},
		{"name: [x\n", "f.yml:1:"},
		{"- a\n", "f.yml:1: formula must be a mapping"},
		{"", "f.yml: formula is empty"},
		{"name: x\nactions:\n  - shell: [x]\ntask:\n  - shell: [y]\n", "f.yml:4: both actions and task"},
		{"name: 'a b'\nactions:\n  - shell: [x]\n", "f.yml:1: name \"a b\""},
	}
	for _, c := range cases {
		_, err := Parse("f.yml", []byte(c.src))
		var fe *Error
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want prefix %q", c.src, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error spans lines: %q", c.src, err)
		}
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	f, err := Parse("f.yml", []byte("name: x\ndesc: d\nmaintainer: m\nfoo: 1\nactions:\n  - shell: [x]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "f.yml:4: unknown key \"foo\"") {
		t.Fatal(f.Warnings)
	}
}

func TestMissingDescAndMaintainerWarn(t *testing.T) {
	f, err := Parse("f.yml", []byte("name: x\nactions:\n  - shell: [x]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 2 || !strings.Contains(f.Warnings[0], "f.yml:1: no desc") || !strings.Contains(f.Warnings[1], "f.yml:1: no maintainer") {
		t.Fatal(f.Warnings)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]any{
		"item":    "foo-1.0-1.fc40",
		"rpms":    []any{"a.rpm", "b.rpm"},
		"out":     map[string]any{"downloaded_rpms": []any{"x.rpm"}, "n": 3},
		"yamlout": "key: value\nlist: [1, 2]\n",
		"arch":    "x86_64",
	}
	cases := []struct {
		in   any
		want any
	}{
		{"${item}", "foo-1.0-1.fc40"},
		{"$item", "foo-1.0-1.fc40"},
		{"${rpms}", []any{"a.rpm", "b.rpm"}},
		{"${out.downloaded_rpms}", []any{"x.rpm"}},
		{"${out.downloaded_rpms.0}", "x.rpm"},
		{"${yamlout.key}", "value"},
		{"n=${out.n}", "n=3"},
		{"$item.log", "foo-1.0-1.fc40.log"},
		{"cost: $$5 ${arch}", "cost: $5 x86_64"},
		{"${arch}_$arch", "x86_64_x86_64"},
		{map[string]any{"${arch}_key": []any{"$item", 1}}, map[string]any{"x86_64_key": []any{"foo-1.0-1.fc40", 1}}},
		{"all: ${rpms}", `all: ["a.rpm","b.rpm"]`},
		{true, true},
	}
	for _, c := range cases {
		got, err := Expand(c.in, vars)
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: got %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestExpandErrors(t *testing.T) {
	vars := map[string]any{"a": "x", "m": map[string]any{}}
	for in, want := range map[string]string{
		"${nope}":  `undefined variable "nope"`,
		"x $nope":  `undefined variable "nope"`,
		"${m.k}":   `undefined variable "m.k"`,
		"${a.b}":   `undefined variable "a.b"`,
		"cost $5":  "invalid placeholder",
		"${a":      "unclosed ${",
		"end $":    "lone $",
		"${1a}":    "invalid placeholder",
		"${a..b}":  "invalid placeholder",
		"${a b}":   "invalid placeholder",
		"${a.b c}": "invalid placeholder",
	} {
		_, err := ExpandString(in, vars)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
	var ue *UndefinedError
	if _, err := ExpandString("${nope}", vars); !errors.As(err, &ue) || ue.Name != "nope" {
		t.Errorf("not an UndefinedError: %v", err)
	}
}

func TestWords(t *testing.T) {
	cases := map[string][]string{
		`./check.sh ${item} --out=${workdir}/x`: {"./check.sh", "${item}", "--out=${workdir}/x"},
		`bash -c 'echo "a b"'`:                  {"bash", "-c", `echo "a b"`},
		`echo "x \" y" a\ b ''`:                 {"echo", `x " y`, "a b", ""},
		`  spaced   out  `:                      {"spaced", "out"},
		`echo 'a;b' "c|d"`:                      {"echo", "a;b", "c|d"},
	}
	for in, want := range cases {
		got, err := Words(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"a; b", "a | b", "a > f", "a $(id)", "a `id`", "a && b", "'open", `"open`, `end\`} {
		if _, err := Words(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(pyver))
	f.Add([]byte("name: t\ninput:\n  args: [[koji_build, bodhi_update]]\ntask:\n  - shell: [echo hi]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := Parse("f.yml", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if fm.Name == "" || len(fm.Actions) == 0 {
			t.Fatalf("accepted a formula without name or actions: %q", data)
		}
		for _, a := range fm.Actions {
			if a.Directive == "" {
				t.Fatalf("action without directive: %q", data)
			}
		}
	})
}

func FuzzExpandString(f *testing.F) {
	for _, s := range []string{"${a}", "$a.b", "$$", "x ${m.k} y", "${", "$", "${a.0}"} {
		f.Add(s)
	}
	vars := map[string]any{"a": "va", "m": map[string]any{"k": []any{"z"}}}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ExpandString(s, vars)
		if err != nil {
			return
		}
		if !strings.Contains(s, "$") && v != s {
			t.Fatalf("%q changed without a $: %v", s, v)
		}
	})
}

func FuzzWords(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e"`, `x\ y`, `a;b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := Words(s)
		if err != nil {
			return
		}
		// Quoting the words again and splitting gives the same words back.
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := Words(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) && len(words) > 0 {
			t.Fatalf("%q: words %q, requoted %q, err %v", s, words, again, err)
		}
	})
}

// Exported variables that use each other double at every action: the cap
// stops them with a SizeError after about log2(MaxExpanded) rounds, fast
// and without building what is over it, whether they grow as strings or
// as lists that share their parts.
func TestExpandCapsExponentialGrowth(t *testing.T) {
	for _, c := range []struct {
		name  string
		param func(prev string) any
	}{
		{"strings", func(prev string) any { return "${" + prev + "}${" + prev + "}" }},
		{"shared lists", func(prev string) any { return []any{"$" + prev, "$" + prev} }},
		{"maps", func(prev string) any { return map[string]any{"a": "$" + prev, "b": "$" + prev} }},
	} {
		vars := map[string]any{"v0": strings.Repeat("x", 1024)}
		var err error
		rounds := 0
		for i := 1; i <= 100; i++ {
			var v any
			v, err = Expand(map[string]any{"msg": c.param(fmt.Sprintf("v%d", i-1))}, vars)
			if err != nil {
				rounds = i
				break
			}
			vars[fmt.Sprintf("v%d", i)] = v.(map[string]any)["msg"]
		}
		var se *SizeError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "more than 64 MiB") {
			t.Fatalf("%s: err = %v", c.name, err)
		}
		if rounds < 15 || rounds > 18 {
			t.Errorf("%s: stopped at round %d; 1 KiB doubled reaches 64 MiB at 17", c.name, rounds)
		}
		// Used inside a longer string, a shared structure is refused before
		// it is rendered as JSON.
		last := fmt.Sprintf("v%d", rounds-1)
		if _, err := ExpandString("x ${"+last+"} ${"+last+"}", vars); !errors.As(err, &se) {
			t.Errorf("%s: rendering %s twice: %v", c.name, last, err)
		}
	}
	// A structure shared 2^60 times over is refused in bounded time.
	deep := any("x")
	for range 60 {
		deep = []any{deep, deep}
	}
	// Unbounded work here would run into the test's timeout: measuring
	// walks each distinct part once.
	var se *SizeError
	if _, err := ExpandString("all: ${deep}", map[string]any{"deep": deep}); !errors.As(err, &se) {
		t.Errorf("deep: %v", err)
	}
	if _, err := Expand([]any{"${deep}"}, map[string]any{"deep": deep}); !errors.As(err, &se) {
		t.Errorf("deep as a value: %v", err)
	}
	// What real formulas do stays allowed: a whole action's output, even a
	// large one, handed on a few times.
	big := strings.Repeat("y", 10<<20)
	v, err := Expand(map[string]any{"results": "${out}", "again": "${out}", "text": "ok: ${out}"}, map[string]any{"out": big})
	if err != nil || v.(map[string]any)["results"] != big {
		t.Errorf("10 MiB output used three times: %v", err)
	}
}
