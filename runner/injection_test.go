package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// injectionFormula hands the item to every directive that takes it, in
// every form the shell directive accepts.
const injectionFormula = `name: injection
input:
  args: [koji_build]
actions:
  - name: shell
    shell:
      - ./args.sh ${item} ${koji_build}
      - [./args.sh, "${item}"]
      - {argv: "./args.sh ${item}", env: {ITEM: "${item}"}}
      - {argv: [./args.sh, "$${item}"], env: {ITEM: "${item}"}}
      - {shell: sh, script: './args.sh "$1" "$ITEM" "$TASKOTRON_ITEM"', args: ["${item}"], env: {ITEM: "${item}"}}
  - name: python
    python:
      file: task.py
      callable: run
      item: ${item}
      koji_build: ${koji_build}
      artifactsdir: ${artifactsdir}
    export: py_out
  - name: resultsdb
    resultsdb:
      results: ${py_out}
  - name: xunit
    xunit:
      item: ${item}
      type: koji_build
      checkname: xu
      file: ${artifactsdir}/junit.xml
      aggregation: none
    export: xu
  - name: resultsdb xunit
    resultsdb:
      results: ${xu}
  - name: report
    create_report:
      results: ${py_out}
      artifactsdir: ${artifactsdir}
  - name: dummy
    dummy:
      result: PASS
      msg: ${item}
    export: dummy_out
  - name: shell again
    shell:
      - ./args.sh ${dummy_out}
  - name: exitcode
    exitcode:
      result_worst: ${py_out}
`

const argsScript = "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n"

const taskPy = `import json, os
from xml.sax.saxutils import quoteattr

def run(item, koji_build, artifactsdir):
    assert item == koji_build
    with open(os.path.join(artifactsdir, "junit.xml"), "w") as f:
        f.write('<testsuite><testcase name=%s/></testsuite>' % quoteattr(item))
    return json.dumps({"results": [{"item": item, "type": "koji_build", "outcome": "PASSED", "note": item}]})
`

// TestNoInjection runs jobs whose item is shell syntax through every
// directive that takes the item and proves nothing was executed: no file
// was created, and every directive saw the item intact, as one value:
// sandboxed (through bwrap's command line) and not (where a file created
// in /tmp would show).
func TestNoInjection(t *testing.T) {
	for _, mode := range []string{"auto", "off"} {
		t.Run(mode, func(t *testing.T) { testNoInjection(t, mode) })
	}
}

func testNoInjection(t *testing.T, mode string) {
	marker := filepath.Join(t.TempDir(), "pwned2")
	items := []string{
		"foo-1.0-1.fc40; touch /tmp/pwned $(id)",
		"foo-1.0-1.fc40 `touch " + marker + "` && touch " + marker + " | touch " + marker + " > " + marker + " '\"$(touch " + marker + ")\"' ${uuid} $$ %s",
	}
	if err := os.Remove("/tmp/pwned"); err != nil && !os.IsNotExist(err) {
		t.Fatalf("cannot clear /tmp/pwned before the test: %v", err)
	}
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Sandbox = mode })
	f := task(t, injectionFormula, map[string]string{"args.sh": argsScript, "task.py": taskPy})
	for _, item := range items {
		exec, err := r.Run(context.Background(), contract.RunnerInput{Item: item, ItemType: "koji_build", Formula: f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if exec.ExecutionStatus != contract.ExecutionOK || exec.ExitCode != 0 {
			t.Fatalf("%q: %+v", item, exec)
		}
		for _, p := range []string{"/tmp/pwned", marker} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%q: %s exists: something was executed", item, p)
			}
		}
		// Every argument every command got is the item, whole.
		for _, log := range []string{"01-shell.stdout", "08-shell-again.stdout"} {
			out, err := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", log))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			wantArgs := 1
			if log == "01-shell.stdout" {
				wantArgs = 2 + 1 + 1 + 1 + 3
			}
			if len(lines) != wantArgs {
				t.Fatalf("%q: %s has %d arguments, want %d:\n%s", item, log, len(lines), wantArgs, out)
			}
			for i, l := range lines {
				if i == 4 && log == "01-shell.stdout" {
					// "$${item}" is the literal text ${item}: no substitution.
					if l != "<${item}>" {
						t.Fatalf("escaped placeholder: %q", l)
					}
					continue
				}
				if l != "<"+item+">" {
					t.Fatalf("%q: %s argument %d is %q", item, log, i+1, l)
				}
			}
		}
		if len(exec.Results) != 2 {
			t.Fatalf("results: %+v", exec.Results)
		}
		if r := exec.Results[0]; r.Item != item || r.Note != item || r.CheckName != "injection" {
			t.Fatalf("python result: %+v", r)
		}
		if r := exec.Results[1]; r.Item != item || r.CheckName != "xu."+item {
			t.Fatalf("xunit result: %+v", r)
		}
		html, err := os.ReadFile(filepath.Join(exec.Artifacts, "report.html"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(html), "`touch") && strings.Contains(string(html), "<"+"/td>`") {
			t.Fatalf("report not escaped")
		}
		if strings.Contains(item, "'") && strings.Contains(string(html), `'"$(touch`) {
			t.Fatalf("quotes reached the report unescaped")
		}
	}
}
