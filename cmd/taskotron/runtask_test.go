package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
)

func TestRuntaskExitStatusAndJSON(t *testing.T) {
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data}
	formula, _ := filepath.Abs("../../tasks/nvr-format/runtask.yml")

	code, out, stderr := runCLI(t, env, "runtask", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", "-a", "x86_64", "--no-report", formula)
	if code != 0 || !strings.Contains(out, "[1/3] check the item format (shell) ... ok") || !strings.Contains(out, "PASSED") {
		t.Fatalf("pass: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, env, "runtask", "--no-report", filepath.Dir(formula), "--item", "notannvr", "--type", "koji_build")
	if code != 100 || !strings.Contains(out, "FAILED") {
		t.Fatalf("fail: exit %d\n%s", code, out)
	}
	code, out, stderr = runCLI(t, env, "runtask", "-i", "f40", "-t", "koji_tag", "--uuid", "cli-json", "--json", "--no-report", formula)
	if code != 1 {
		t.Fatalf("broken run: exit %d, stderr %s", code, stderr)
	}
	var exec contract.Execution
	if err := json.Unmarshal([]byte(out), &exec); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if exec.UUID != "cli-json" || exec.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(exec.Status, "input.args") || len(exec.Results) != 1 {
		t.Fatalf("execution: %+v", exec)
	}
	if !strings.Contains(stderr, "runtask: nvr-format on f40") {
		t.Fatalf("progress should go to stderr with --json: %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "artifacts", "cli-json", "taskotron", "taskotron.log")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, env, "runtask", "-i", "x-1-1", "-t", "koji_build", "--override", "item=y-2-2", "--no-report", "--json", formula)
	if code != 0 || !strings.Contains(out, `"item": "y-2-2"`) {
		t.Fatalf("override: exit %d\n%s", code, out)
	}
}

func TestRuntaskUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"runtask", "-t", "koji_build", "x.yml"},
		{"runtask", "-i", "x", "x.yml"},
		{"runtask", "-i", "x", "-t", "nope", "x.yml"},
		{"runtask", "-i", "x", "-t", "koji_build"},
		{"runtask", "-i", "x", "-t", "koji_build", "--override", "1x=2", "x.yml"},
		{"runtask", "-i", "x", "-t", "koji_build", "--libvirt", "x.yml"},
		{"runtask", "--frobnicate"},
	} {
		code, _, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + t.TempDir()}, args...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "runtask: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// A formula whose exports use each other grows exponentially: the run
// stops, quickly, with one line naming the action, not out of memory.
func TestRuntaskExponentialFormulaStopsAtTheCap(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("name: grow\ndesc: exports that double\nmaintainer: test\ninput:\n  args: [koji_build]\nactions:\n")
	b.WriteString("  - name: grow 0\n    dummy: {result: PASS, msg: " + strings.Repeat("x", 1024) + "}\n    export: v0\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  - name: grow %d\n    dummy: {result: PASS, msg: \"${v%d}${v%d}\"}\n    export: v%d\n", i, i-1, i-1, i)
	}
	formula := filepath.Join(dir, "runtask.yml")
	os.WriteFile(formula, []byte(b.String()), 0o644)
	start := time.Now()
	code, out, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + dir}, "runtask", "-i", "x-1-1", "-t", "koji_build", "--no-report", "--json", formula)
	var exec contract.Execution
	if err := json.Unmarshal([]byte(out), &exec); err != nil {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	// 1 KiB doubled is 64 MiB at the 16th doubling, with the other parameters over it.
	want := formula + `:55: action "grow 16": variables expand to more than 64 MiB`
	if code != 1 || exec.ExecutionStatus != contract.ExecutionNotOK || !strings.HasPrefix(exec.Status, want) || strings.Contains(exec.Status, "\n") {
		t.Fatalf("exit %d, status %q, want NOT_OK and %q…", code, exec.Status, want)
	}
	if !strings.Contains(stderr, `[17/41] grow 16 (dummy) ... failed`) || strings.Contains(stderr, "goroutine") {
		t.Errorf("progress:\n%s", stderr)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %s", took)
	}
}

// Flag values the runner would refuse once running (storing a CRASHED
// result for "unknown-task") are usage errors before anything runs or is
// reported: exit 2, one line, no artifacts, nothing in ResultsDB.
func TestRuntaskBadValuesAreUsageErrors(t *testing.T) {
	url := resultsdbtest.Start(t)
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data, "TASKOTRON_RESULTSDB_URL=" + url}
	formula, _ := filepath.Abs("../../tasks/nvr-format/runtask.yml")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", "x-1-1", "-t", "koji_build", "-a", "x86 64"}, `runtask: -a "x86 64": use letters, digits`},
		{[]string{"-i", "x-1-1", "-t", "koji_build", "-a", ""}, `runtask: -a "": the arch is empty`},
		{[]string{"-i", "x-1-1", "-t", "koji_build", "-a", "../x"}, `runtask: -a "../x"`},
		{[]string{"-i", "x-1-1", "-t", "koji build"}, `runtask: -t "koji build": unknown item type`},
		{[]string{"-i", "", "-t", "koji_build"}, "runtask: -i ITEM is required"},
		{[]string{"-i", "  ", "-t", "koji_build"}, `runtask: -i "  ": the item is blank`},
		{[]string{"-i", " x-1-1", "-t", "koji_build"}, `runtask: -i " x-1-1": the item starts or ends with a blank`},
		{[]string{"-i", "x-1-1\nFAKE", "-t", "koji_build"}, "the item holds a control character"},
		{[]string{"-i", "x-1-1", "-t", "koji_build", "--uuid", "a b"}, `runtask: --uuid "a b"`},
		{[]string{"-i", "x-1-1", "-t", "koji_build", "--uuid", "_x"}, `runtask: --uuid "_x"`},
	} {
		args := append(append([]string{"runtask", "--report"}, c.args...), formula)
		code, out, stderr := runCLI(t, env, args...)
		if code != 2 || !strings.HasPrefix(stderr, "runtask: ") || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want exit 2 and %q", c.args, code, out, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "artifacts")); !os.IsNotExist(err) {
		t.Errorf("a run started: artifacts folder: %v", err)
	}
	resp, err := http.Get(url + "/api/v2.0/results")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Data) != 0 {
		t.Errorf("ResultsDB holds %d results (%v), want none", len(page.Data), err)
	}
	// The values the runner takes still run.
	code, out, stderr := runCLI(t, env, "runtask", "--no-report", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", "-a", "x86_64", "--uuid", "Run_1.a-b", formula)
	if code != 0 || !strings.Contains(out, "execution OK") {
		t.Errorf("good values: exit %d\n%s\n%s", code, out, stderr)
	}
}

// A task that prints broken TAP does not pass: the run ends NOT_OK with
// the reason, naming the action and the line of the output.
func TestRuntaskBrokenTAPIsNotOK(t *testing.T) {
	for i, c := range brokenTAP {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "output.tap"), []byte(c.tap), 0o644)
		formula := filepath.Join(dir, "runtask.yml")
		os.WriteFile(formula, []byte(`name: broken-tap
desc: prints TAP that breaks the protocol
maintainer: test
input:
  args: [koji_build]
actions:
  - name: print TAP
    shell:
      - [cat, output.tap]
    export: tap
  - name: report results
    resultsdb:
      results: ${tap}
`), 0o644)
		uuid := fmt.Sprintf("broken-tap-%d", i)
		code, out, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + dir}, "runtask", "--no-report", "--json", "--uuid", uuid, "-i", "x-1-1", "-t", "koji_build", formula)
		var exec contract.Execution
		if err := json.Unmarshal([]byte(out), &exec); err != nil {
			t.Fatalf("%s: exit %d, %v\n%s\n%s", c.name, code, err, out, stderr)
		}
		want := formula + `:11: action "report results": task output: `
		if code != 1 || exec.ExecutionStatus != contract.ExecutionNotOK || !strings.HasPrefix(exec.Status, want) || !strings.Contains(exec.Status, c.want) {
			t.Errorf("%s: exit %d, %s %q, want NOT_OK, %q…%q", c.name, code, exec.ExecutionStatus, exec.Status, want, c.want)
		}
		if !strings.Contains(stderr, "report results (resultsdb) ... failed") {
			t.Errorf("%s: progress:\n%s", c.name, stderr)
		}
	}
}
