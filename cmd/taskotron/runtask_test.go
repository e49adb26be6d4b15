package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
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
