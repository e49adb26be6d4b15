package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRolesRefuseToStartWithoutTheSandbox: where bwrap cannot make a
// sandbox (here: inside one that allows no further user namespace), the
// worker, up and runtask refuse to start with one line saying why and how
// to turn the sandbox off; turned off, runtask runs the task and warns.
func TestRolesRefuseToStartWithoutTheSandbox(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatalf("bwrap (Debian package bubblewrap) is needed: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "taskotron")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	formula, _ := filepath.Abs("../../tasks/nvr-format/runtask.yml")
	run := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command(bwrap, append([]string{"--unshare-user", "--disable-userns", "--dev-bind", "/", "/", "--", bin}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TASKOTRON_DATA_DIR=" + filepath.Join(dir, "data")}, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	for _, args := range [][]string{
		{"worker"},
		{"up", "--once", "--fakes", ""},
		{"runtask", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", formula},
	} {
		code, _, stderr := run(nil, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "taskotron "+args[0]+": task sandbox (runner.sandbox: auto): bwrap cannot make a sandbox on this machine") ||
			!strings.Contains(lines[0], "set runner.sandbox: off (TASKOTRON_RUNNER_SANDBOX=off)") {
			t.Errorf("%s: exit %d, stderr:\n%s", args[0], code, stderr)
		}
	}
	code, stdout, stderr := run([]string{"TASKOTRON_RUNNER_SANDBOX=off"}, "runtask", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", formula)
	if code != 0 || !strings.Contains(stdout, "execution OK, exit code 0") {
		t.Fatalf("sandbox off: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "task process runs unsandboxed (runner.sandbox: off)") {
		t.Errorf("sandbox off: no warning:\n%s", stderr)
	}
}
