package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// role is one taskotron process (trigger, worker, resultsdb serve),
// supervised as systemd's Restart=on-failure would: when it exits without
// being told to, the exit is counted and it starts again after a second.
type role struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	log     *slog.Logger

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when the current process has exited
	expectExit bool          // the harness killed or stopped it
	stopped    bool          // for good: no restart
	starts     int
	unexpected []string // how each unexpected exit of a running process ended
	// startFailures counts exits within startupTime of the start: a role
	// that cannot reach the broker when it starts says so and exits, for
	// systemd (or this harness) to start it again.
	startFailures int
	restartIn     time.Duration
}

func newRole(name, bin string, args, env []string, logPath string, log *slog.Logger) *role {
	return &role{name: name, bin: bin, args: args, env: env, logPath: logPath, log: log, restartIn: time.Second}
}

// start runs the process; its output goes to the role's log file.
func (r *role) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked()
}

func (r *role) startLocked() error {
	if r.stopped {
		return nil
	}
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(f, "\n===== chaos: %s start %d at %s\n", r.name, r.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, r.args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that a signal to the harness's terminal
	// does not reach it, and it dies with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", r.name, err)
	}
	done := make(chan struct{})
	r.cmd, r.done, r.expectExit = cmd, done, false
	began := time.Now()
	go func() {
		err := cmd.Wait()
		f.Close()
		r.mu.Lock()
		expected := r.expectExit
		if !expected && !r.stopped {
			why := "exit 0"
			if err != nil {
				why = err.Error()
			}
			lived := time.Since(began)
			if lived < startupTime {
				r.startFailures++
			} else {
				r.unexpected = append(r.unexpected, fmt.Sprintf("%s after %s", why, lived.Round(time.Second)))
			}
			r.log.Warn("role exited on its own; restarting it", "role", r.name, "how", why, "after", lived.Round(time.Millisecond), "log", r.logPath)
			time.AfterFunc(r.restartIn, func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				if r.cmd == cmd && !r.stopped {
					if err := r.startLocked(); err != nil {
						r.log.Error("restart failed", "role", r.name, "err", err)
					}
				}
			})
		}
		r.mu.Unlock()
		close(done)
	}()
	return nil
}

// running says whether the process is up.
func (r *role) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// pid is the running process's id (0 when none).
func (r *role) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// signal sends sig to the process (SIGSTOP, SIGCONT).
func (r *role) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return errors.New(r.name + " is not running")
	}
	return r.cmd.Process.Signal(sig)
}

// kill SIGKILLs the process and waits until it is gone.
func (r *role) kill() error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	if cmd == nil {
		r.mu.Unlock()
		return errors.New(r.name + " is not running")
	}
	r.expectExit = true
	err := cmd.Process.Signal(syscall.SIGKILL)
	r.mu.Unlock()
	<-done
	return err
}

// stop ends the process for good: SIGTERM, then SIGKILL after grace. It
// says whether it stopped within the grace.
func (r *role) stop(grace time.Duration) bool {
	r.mu.Lock()
	r.stopped = true
	cmd, done := r.cmd, r.done
	if cmd == nil {
		r.mu.Unlock()
		return true
	}
	r.expectExit = true
	cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot end
	cmd.Process.Signal(syscall.SIGTERM)
	r.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return false
	}
}

// startupTime is how long a role may take to start (connect to the broker,
// open its database); an exit before is a failed start, not a crash.
const startupTime = 5 * time.Second

// failedStarts counts the starts that ended within startupTime.
func (r *role) failedStarts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startFailures
}

// unexpectedExits lists how the process ended each time it exited on its
// own.
func (r *role) unexpectedExits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.unexpected...)
}
