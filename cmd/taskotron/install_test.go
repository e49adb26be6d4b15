package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/taskotron-go/taskotron/status"
)

var installed struct {
	once     sync.Once
	dir      string
	bin, rev string
	err      error
}

// TestMain removes the folder the binary was built in.
func TestMain(m *testing.M) {
	code := m.Run()
	if installed.dir != "" {
		os.RemoveAll(installed.dir)
	}
	os.Exit(code)
}

// installedBinary builds the binary as `go install` does from a checkout
// (version control stamped in), from a git repository holding this
// working tree's files, and returns it and that repository's commit.
func installedBinary(t *testing.T) (bin, rev string) {
	t.Helper()
	installed.once.Do(func() {
		dir, err := os.MkdirTemp("", "taskotron-install-")
		if err != nil {
			installed.err = err
			return
		}
		installed.dir = dir
		installed.bin, installed.rev, installed.err = buildFromCopy(dir)
	})
	if installed.err != nil {
		t.Fatalf("building the binary: %v", installed.err)
	}
	return installed.bin, installed.rev
}

func buildFromCopy(dir string) (bin, rev string, err error) {
	run := func(dir string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			err = &exitErr{cmd: name + " " + strings.Join(args, " "), err: err, stderr: string(ee.Stderr)}
		}
		return string(out), err
	}
	root, err := run(".", "git", "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", err
	}
	root = strings.TrimSpace(root)
	files, err := run(root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(dir, "src")
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		info, err := os.Lstat(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			return "", "", err
		}
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(src, f), raw, info.Mode().Perm()); err != nil {
			return "", "", err
		}
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-q", "-m", "install test"},
	} {
		if _, err := run(src, "git", args...); err != nil {
			return "", "", err
		}
	}
	if rev, err = run(src, "git", "rev-parse", "HEAD"); err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "bin", "taskotron")
	// -buildvcs=true: stamp the commit, as a build in a checkout does
	// unless GOFLAGS turns it off.
	if _, err := run(src, "go", "build", "-buildvcs=true", "-o", bin, "./cmd/taskotron"); err != nil {
		return "", "", err
	}
	return bin, strings.TrimSpace(rev), nil
}

type exitErr struct {
	cmd, stderr string
	err         error
}

func (e *exitErr) Error() string { return e.cmd + ": " + e.err.Error() + ": " + e.stderr }

// cleanEnv is this process's environment without TASKOTRON_ settings.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKOTRON_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestVersionPrintsTheVersionAndCommit(t *testing.T) {
	bin, rev := installedBinary(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("taskotron version: %v", err)
	}
	line := strings.TrimSpace(string(out))
	// Go derives a pseudo-version from the commit when no tag names it.
	if !strings.HasPrefix(line, "taskotron v0.0.0-") || !strings.Contains(line, "-"+rev[:12]+" ") ||
		!strings.Contains(line, "(commit "+rev+", 20") || strings.Contains(line, "uncommitted") || strings.Count(line, "\n") != 0 {
		t.Errorf("taskotron version: %q, want the version and commit %s", line, rev)
	}
	out, err = exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var b status.Build
	if err := json.Unmarshal(out, &b); err != nil || b.Revision != rev || !strings.HasPrefix(b.Version, "v0.0.0-") || b.Go == "" {
		t.Errorf("version --json: %s (%v)", out, err)
	}
}

func TestVersionWithoutBuildStampSaysSo(t *testing.T) {
	// A test binary carries no version control stamp.
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.Contains(out, "commit unknown: built without version control information") {
		t.Errorf("exit %d: %q", code, out)
	}
	if code, _, stderr := runCLI(t, nil, "version", "extra"); code != 2 || !strings.Contains(stderr, `"extra"`) {
		t.Errorf("version extra: exit %d, %q", code, stderr)
	}
}

// The installed binary alone, run where there is no checkout, runs the demo
// built into it: the fixture messages, the real tasks, the same outcomes.
func TestUpOutsideACheckoutRunsTheBuiltInDemo(t *testing.T) {
	bin, _ := installedBinary(t)
	work := t.TempDir()
	for i := 0; i < 2; i++ { // the second run finds the first one's data folder and demo
		cmd := exec.Command(bin, "up", "--once")
		cmd.Dir = work
		cmd.Env = cleanEnv("TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run %d: taskotron up --once outside a checkout: %v\n%s", i+1, err, stderr.String())
		}
		demo := filepath.Join(work, ".taskotron", "demo")
		if !strings.Contains(stderr.String(), "no fixtures folder here (not a checkout): running the demo built into the binary, unpacked in "+demo) {
			t.Errorf("run %d: stderr does not say it runs the built-in demo:\n%s", i+1, stderr.String())
		}
		want := "7 messages: 5 made jobs, 2 ignored. Jobs: 8 PASSED, 1 FAILED."
		if i == 1 {
			// The same data folder: the trigger knows these messages.
			want = "already handled (message id seen)"
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("run %d: summary:\n%s\nstderr:\n%s", i+1, out, stderr.String())
		}
		if !strings.Contains(string(out), filepath.Join(demo, "fixtures", "messages", "koji-tag__3.json")) {
			t.Errorf("run %d: the messages do not come from the demo folder:\n%s", i+1, out)
		}
	}
}
