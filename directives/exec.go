package directives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/sandbox"
)

// Cmd is one process a directive runs. Argv goes to the kernel as is: no
// shell sees it unless Argv[0] is one.
type Cmd struct {
	Argv []string
	// Env adds variables on top of the scrubbed environment.
	Env map[string]string
	// Dir is the working folder; empty means the task's checkout.
	Dir   string
	Stdin io.Reader
}

// ExecResult is what a finished process left behind.
type ExecResult struct {
	// Stdout is what the process printed, cut at the configured cap.
	Stdout   []byte
	ExitCode int
	// Truncated says output went past the cap and the rest was dropped.
	Truncated bool
	// StderrTail is the end of what the process printed on stderr, for
	// error messages.
	StderrTail string
}

// exportedVars are the formula variables every process sees as
// TASKOTRON_<NAME>, so a script reads its item from the environment.
var exportedVars = []string{"item", "type", "arch", "uuid", "jobid", "workdir", "artifactsdir", "taskname", "checkname", "namespace"}

// ProcessEnv is the environment a task's process gets: the variables of
// this process named in runner.env_allowlist, TASKOTRON_ITEM and friends,
// TASKOTRON_RUNNER (this process's ProcessMark), then extra.
func (e *Env) ProcessEnv(extra map[string]string) []string {
	vals := map[string]string{}
	for _, name := range e.Config.Runner.EnvAllowlist {
		if v, ok := os.LookupEnv(name); ok {
			vals[name] = v
		}
	}
	for _, name := range exportedVars {
		if v, ok := e.Vars[name].(string); ok {
			vals["TASKOTRON_"+strings.ToUpper(name)] = v
		}
	}
	if m := ProcessMark(); m != "" {
		vals[RunnerEnv] = m
	}
	for k, v := range extra {
		vals[k] = v
	}
	out := make([]string, 0, len(vals))
	for k, v := range vals {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Exec runs one process in its own process group. When ctx ends (the action
// or job timed out, the worker stops) the whole group is killed, and so is
// anything the process left running in the background when it exits.
// Output beyond runner.max_output is dropped and noted in the action log.
// A non-zero exit is not an error here; the caller decides.
func (e *Env) Exec(ctx context.Context, c Cmd) (ExecResult, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return ExecResult{}, errors.New("empty command")
	}
	limit := e.Config.Runner.MaxOutput
	if limit <= 0 {
		limit = 10 << 20
	}
	dir := c.Dir
	if dir == "" {
		dir = e.TaskDir
	}
	env := e.ProcessEnv(c.Env)
	name, args, boxed, err := e.sandboxed(c.Argv, dir, env)
	if err != nil {
		return ExecResult{}, err
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = c.Stdin
	// Pdeathsig: if the worker dies (SIGKILL), its task dies with it
	// instead of writing into a folder the next attempt uses.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd) }
	// A background child may hold the pipes open after the process exits:
	// stop waiting for it after a moment and kill the group.
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	stdout := &capWriter{keep: &out, log: e.Stdout, limit: limit}
	stderr := &capWriter{log: e.Stderr, limit: limit}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if e.Log != nil {
		e.Log.Debug("exec", "action", e.ActionName, "argv", c.Argv, "dir", dir)
	}
	start := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		_ = killGroup(cmd)
	}
	stdout.note()
	stderr.note()
	res := ExecResult{Stdout: out.Bytes(), Truncated: stdout.dropped > 0, StderrTail: stderr.tailString()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return res, Stopped(fmt.Errorf("%s: killed after %s: %w", c.Argv[0], time.Since(start).Round(time.Millisecond), context.Cause(ctx)))
	}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil, errors.Is(runErr, exec.ErrWaitDelay):
	case errors.As(runErr, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return res, Stopped(fmt.Errorf("%s: killed by signal %s", c.Argv[0], ws.Signal()))
		}
		// bwrap says a process killed by a signal as a shell would:
		// exit status 128+signal.
		if sig := syscall.Signal(res.ExitCode - 128); boxed && sig > 0 && sig < 32 {
			return res, Stopped(fmt.Errorf("%s: killed by signal %s", c.Argv[0], sig))
		}
	default:
		return res, fmt.Errorf("%s: %w", c.Argv[0], runErr)
	}
	return res, nil
}

// sandboxed returns the program and arguments that run argv as
// runner.sandbox says: in bubblewrap (sandbox.Command), seeing the system
// read-only and its own folders (the task, work and artifacts folders),
// or, when the sandbox is off, as it is.
func (e *Env) sandboxed(argv []string, dir string, env []string) (name string, args []string, boxed bool, err error) {
	mode, err := sandbox.Mode(e.Config.Runner.Sandbox)
	if err != nil {
		return "", nil, false, err
	}
	if mode == sandbox.Off {
		if e.Log != nil {
			e.Log.Warn("task process runs unsandboxed (runner.sandbox: off): it can read whatever the worker can", "action", e.ActionName, "argv0", argv[0])
		}
		return argv[0], argv[1:], false, nil
	}
	// A missing program says so here, as it does unsandboxed, instead of
	// as bwrap's exit status 1.
	if !strings.Contains(argv[0], "/") {
		if _, err := exec.LookPath(argv[0]); err != nil {
			return "", nil, false, fmt.Errorf("%s: %w", argv[0], err)
		}
	}
	spec := sandbox.Spec{Dir: dir, Hide: sandbox.SecretPaths(e.Config)}
	for _, d := range []string{e.WorkDir, e.ArtifactsDir} {
		if d != "" {
			spec.Writable = append(spec.Writable, d)
		}
	}
	if e.TaskDir != "" {
		// A worker's run has a private copy of the task beside its work
		// folder, the task's to change; a task author's checkout (runtask)
		// is only read.
		if e.WorkDir != "" && isWithin(filepath.Dir(e.WorkDir), e.TaskDir) {
			spec.Writable = append(spec.Writable, e.TaskDir)
		} else {
			spec.ReadOnly = append(spec.ReadOnly, e.TaskDir)
		}
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			spec.Home = v
		}
	}
	name, args, err = sandbox.Command(mode, spec, argv)
	if err != nil {
		return "", nil, false, Infra(err)
	}
	return name, args, true, nil
}

// isWithin tells whether p is root or inside it.
func isWithin(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !startsWithDotDot(rel)
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// capWriter keeps and logs up to limit bytes and counts the rest.
type capWriter struct {
	keep    *bytes.Buffer
	log     io.Writer
	limit   int64
	written int64
	dropped int64
	tail    []byte
}

const tailSize = 400

// tailString is the last line or so of everything written, kept or not.
func (w *capWriter) tailString() string {
	s := strings.TrimSpace(string(w.tail))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (w *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.tail = append(w.tail, p...)
	if len(w.tail) > tailSize {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailSize:]...)
	}
	room := w.limit - w.written
	if room <= 0 {
		w.dropped += int64(n)
		return n, nil
	}
	if int64(len(p)) > room {
		w.dropped += int64(len(p)) - room
		p = p[:room]
	}
	w.written += int64(len(p))
	if w.keep != nil {
		w.keep.Write(p)
	}
	if w.log != nil {
		// A full disk must not kill the task; the log is best effort.
		_, _ = w.log.Write(p)
	}
	return n, nil
}

func (w *capWriter) note() {
	if w.dropped > 0 && w.log != nil {
		fmt.Fprintf(w.log, "\n[taskotron: output cut at %d bytes, %d bytes dropped]\n", w.limit, w.dropped)
	}
}
