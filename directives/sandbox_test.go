package directives

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/sandbox"
)

const secret = "s3cr3t-7f1c"

// workerEnv lays out a worker's data_dir as production does (queue, spool,
// databases, the run's work and artifacts folders below it), puts the
// worker's secrets in its environment and configuration files, and
// returns the Env of one run in it.
func workerEnv(t *testing.T) (*Env, string) {
	t.Helper()
	data := t.TempDir()
	e := &Env{
		WorkDir:      filepath.Join(data, "work", "u1", "work"),
		TaskDir:      filepath.Join(data, "work", "u1", "task"),
		ArtifactsDir: filepath.Join(data, "artifacts", "u1"),
		Config:       config.Default(),
		ActionName:   "test",
		Vars:         map[string]any{"item": "pkg-1-1.fc40", "type": "koji_build", "uuid": "u1"},
	}
	e.Config.DataDir = data
	for _, d := range []string{e.WorkDir, e.TaskDir, e.ArtifactsDir, filepath.Join(data, "spool"), filepath.Join(data, "queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"taskotron.yaml":     "amqp:\n  url: amqp://taskotron:" + secret + "@rabbit/\n",
		"spool/post.json":    `{"token": "` + secret + `"}`,
		"queue/job.json":     `{"secret": "` + secret + `"}`,
		"resultsdb.sqlite":   secret,
		"work/u0/work/other": secret, // another run's folder
	} {
		p := filepath.Join(data, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TASKOTRON_AMQP_URL", "amqp://taskotron:"+secret+"@rabbit/")
	t.Setenv("TASKOTRON_RESULTSDB_TOKEN", secret)
	t.Setenv("TASKOTRON_BODHI_TOKEN", secret)
	return e, data
}

// run runs a shell script as a task process of e and returns its stdout
// and stderr (the action's logs) and exit status.
func run(t *testing.T, e *Env, script string, args ...string) (string, int) {
	t.Helper()
	var log strings.Builder
	e.Stderr = &log
	res, err := e.Exec(context.Background(), Cmd{Argv: append([]string{"sh", "-c", script, "sh"}, args...)})
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return string(res.Stdout) + log.String(), res.ExitCode
}

// TestTaskCannotReadTheWorkersSecrets: a task process finds none of the
// worker's secrets: not in its parent's or PID 1's environment, not in any
// process it can see (it sees only its own), not in the configuration
// file, the data_dir (spool, queue, databases, other runs), or a
// configuration file the worker was started with inside the task's
// folder.
func TestTaskCannotReadTheWorkersSecrets(t *testing.T) {
	e, data := workerEnv(t)
	// A runtask from a task author's checkout, started with --config and
	// TASKOTRON_CONFIG naming files in it.
	author := t.TempDir()
	e.TaskDir = author
	for _, f := range []string{"taskotron.yaml", "env.yaml"} {
		if err := os.WriteFile(filepath.Join(author, f), []byte("token: "+secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := sandbox.Check(e.Config.Runner.Sandbox, filepath.Join(author, "taskotron.yaml")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TASKOTRON_CONFIG", filepath.Join(author, "env.yaml"))
	// Another process of the worker's, with the secrets in its environment.
	sibling := exec.Command("sleep", "60", "sibling-"+secret)
	sibling.Env = os.Environ()
	if err := sibling.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sibling.Process.Kill(); sibling.Wait() })
	self := strconv.Itoa(os.Getpid())

	// What it reads is there (the scrubbed environment), so an empty
	// answer is not taken for a hidden secret.
	out, code := run(t, e, `tr '\0' '\n' < /proc/$PPID/environ; tr '\0' '\n' < /proc/1/environ`)
	if code != 0 || !strings.Contains(out, "TASKOTRON_ITEM=pkg-1-1.fc40") || strings.Contains(out, secret) {
		t.Fatalf("parent's and PID 1's environment (exit %d):\n%s", code, out)
	}
	for _, c := range []struct{ what, script string }{
		{"any process's environment or command line", `cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline; cat /proc/$1/environ /proc/` + self + `/environ`},
		{"the configuration files", `cat "$2/taskotron.yaml" taskotron.yaml env.yaml`},
		{"the data_dir", `cat "$2/spool/post.json" "$2/queue/job.json" "$2/resultsdb.sqlite" "$2/work/u0/work/other"; ls -AR "$2"`},
		// The system's programs aside; the secret comes in on stdin.
		{"the whole file system it sees", `read -r s; grep -rls "$s" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr`},
	} {
		res, err := e.Exec(context.Background(), Cmd{Argv: []string{"sh", "-c", c.script, "sh", strconv.Itoa(sibling.Process.Pid), data}, Stdin: strings.NewReader(secret + "\n")})
		if err != nil {
			t.Fatal(err)
		}
		if out := string(res.Stdout); strings.Contains(out, secret) || c.what == "the whole file system it sees" && out != "" {
			t.Errorf("a task read a secret in %s:\n%s", c.what, out)
		}
	}
	// It sees its own processes only: not the worker, not the sibling.
	out, _ = run(t, e, `ls /proc | grep -E '^[0-9]+$' | tr '\n' ' '; for p in "$@"; do test -e /proc/$p && printf '%s is visible ' $p; done`, strconv.Itoa(sibling.Process.Pid), self)
	for _, f := range strings.Fields(out) {
		if len(f) != 1 {
			t.Errorf("processes a task sees: %s", out)
			break
		}
	}
	if out, _ := run(t, e, `tr '\0' ' ' < /proc/1/cmdline`); !strings.HasPrefix(out, "bwrap ") && !strings.Contains(out, "/bwrap ") {
		t.Errorf("PID 1 of a task is %q, not bwrap", out)
	}
	// The folders the worker keeps are shown only as the run's own.
	out, _ = run(t, e, `ls -A "$1" "$1/work" "$1/work/u1"`, data)
	if out != data+":\nartifacts\nwork\n\n"+data+"/work:\nu1\n\n"+data+"/work/u1:\nwork\n" {
		t.Errorf("data_dir as a task sees it:\n%s", out)
	}
}

// TestTaskCannotWriteOutsideItsFolders: a task writes its work and
// artifacts folders and nothing else of the host: not the data_dir, not
// the author's checkout, not the system.
func TestTaskCannotWriteOutsideItsFolders(t *testing.T) {
	e, data := workerEnv(t)
	author := t.TempDir()
	e.TaskDir = author
	out, code := run(t, e, `echo w > "$1/w" && echo a > "$2/a" && echo ok`, e.WorkDir, e.ArtifactsDir)
	if code != 0 || out != "ok\n" {
		t.Fatalf("own folders: exit %d: %s", code, out)
	}
	targets := []string{
		filepath.Join(data, "queue", "job.json"), filepath.Join(data, "spool", "new.json"), filepath.Join(data, "planted"),
		filepath.Join(author, "runtask.yml"), filepath.Join(t.TempDir(), "elsewhere"), "/usr/local/sbx-planted", "/etc/sbx-planted",
	}
	for _, p := range targets {
		run(t, e, `echo planted > "$1"; mkdir -p "$(dirname "$1")" && echo planted > "$1"`, p)
	}
	for _, p := range targets {
		if got, err := os.ReadFile(p); err == nil && strings.Contains(string(got), "planted") {
			os.Remove(p)
			t.Errorf("a task wrote %s", p)
		}
	}
	for p, want := range map[string]string{filepath.Join(e.WorkDir, "w"): "w\n", filepath.Join(e.ArtifactsDir, "a"): "a\n"} {
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s: %q", p, got)
		}
	}
	// A worker's run has a private copy of the task beside its work
	// folder: that one is the task's to change.
	e.TaskDir = filepath.Join(data, "work", "u1", "task")
	if out, code := run(t, e, `echo x > state.txt && cat state.txt`); code != 0 || out != "x\n" {
		t.Errorf("private task copy: exit %d: %s", code, out)
	}
}

// TestSandboxOffWarnsAndRunsAsIs: runner.sandbox off runs the process as
// it is, and says so in the run's log.
func TestSandboxOffWarnsAndRunsAsIs(t *testing.T) {
	e, data := workerEnv(t)
	e.Config.Runner.Sandbox = "off"
	var log strings.Builder
	e.Log = slog.New(slog.NewTextHandler(&log, nil))
	out, code := run(t, e, `ls "$1"`, data)
	if code != 0 || !strings.Contains(out, "spool") {
		t.Fatalf("off: exit %d: %s", code, out)
	}
	if !strings.Contains(log.String(), "task process runs unsandboxed (runner.sandbox: off)") {
		t.Errorf("no warning in the log:\n%s", log.String())
	}
	e.Config.Runner.Sandbox = "on"
	if _, err := e.Exec(context.Background(), Cmd{Argv: []string{"true"}}); err == nil || err.Error() != `runner.sandbox "on": want auto, bwrap or off` {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestSandboxedExitStatusAndSignals: a sandboxed process's exit status is
// its own, a missing program is named, and one killed by a signal is
// reported as stopped, as unsandboxed.
func TestSandboxedExitStatusAndSignals(t *testing.T) {
	e, _ := workerEnv(t)
	res, err := e.Exec(context.Background(), Cmd{Argv: []string{"sh", "-c", "exit 3"}})
	if err != nil || res.ExitCode != 3 {
		t.Errorf("exit 3: %d %v", res.ExitCode, err)
	}
	if _, err := e.Exec(context.Background(), Cmd{Argv: []string{"no-such-program-xyz"}}); err == nil || !strings.Contains(err.Error(), `no-such-program-xyz: exec: "no-such-program-xyz": executable file not found`) {
		t.Errorf("missing program: %v", err)
	}
	_, err = e.Exec(context.Background(), Cmd{Argv: []string{"sh", "-c", "kill -KILL $$"}})
	if err == nil || !IsStopped(err) || !strings.Contains(err.Error(), "sh: killed by signal killed") {
		t.Errorf("killed: %v", err)
	}
}
