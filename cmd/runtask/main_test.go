package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

// TestRuntaskCommand builds the runtask command and runs the example task
// with it, as a task author would.
func TestRuntaskCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runtask")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	formula, _ := filepath.Abs("../../tasks/nvr-format/runtask.yml")
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+dir, "TASKOTRON_CONFIG=")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	code, out, errb := run("-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--no-report", "--json", formula)
	var e contract.Execution
	if code != 0 || json.Unmarshal([]byte(out), &e) != nil || e.ExecutionStatus != contract.ExecutionOK || len(e.Results) != 1 {
		t.Fatalf("pass: exit %d\n%s\n%s", code, out, errb)
	}
	if code, out, _ := run("-i", "foo-1.0-1.fc40; touch /tmp/pwned $(id)", "-t", "koji_build", "--no-report", formula); code != 100 || !strings.Contains(out, "FAILED") {
		t.Fatalf("fail: exit %d\n%s", code, out)
	}
	if code, _, errb := run("-t", "koji_build", formula); code != 2 || !strings.Contains(errb, "-i ITEM is required") {
		t.Fatalf("usage: exit %d %q", code, errb)
	}
}
