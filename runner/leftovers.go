package runner

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/directives"
)

// killLeftovers kills what an earlier attempt of this execution left
// running: every process of ours whose environment says
// TASKOTRON_UUID=<uuid>, and the process group it is in. A worker killed
// with SIGKILL takes its direct children with it (Pdeathsig), but not their
// children, which would otherwise go on writing into the folders the next
// attempt uses. It returns how many processes it killed.
func killLeftovers(uuid string) int {
	if !uuidRe.MatchString(uuid) {
		return 0
	}
	want := []byte("TASKOTRON_UUID=" + uuid)
	return killMatching(func(environ []byte) bool { return envEntry(environ, want) != nil })
}

// KillOrphans kills the task processes whose worker (or runtask) died
// before they ended: those marked with a TASKOTRON_RUNNER that no longer
// runs. A worker calls it when it starts, so that a host's orphans end even
// when their job went to another host.
// KillOrphans kills the task processes that a dead worker left running
// (see the package function).
func (r *Runner) KillOrphans() int { return KillOrphans() }

func KillOrphans() int {
	prefix := []byte(directives.RunnerEnv + "=")
	self := directives.ProcessMark()
	alive := map[string]bool{}
	return killMatching(func(environ []byte) bool {
		m := envEntry(environ, prefix)
		if m == nil {
			return false
		}
		mark := string(m[len(prefix):])
		if mark == self {
			return false
		}
		ok, known := alive[mark]
		if !known {
			ok = directives.MarkAlive(mark)
			alive[mark] = ok
		}
		return !ok
	})
}

// killMatching kills every process of ours whose environment match
// accepts, and the process group it is in (members that scrubbed their
// environment too). It returns how many processes matched.
func killMatching(match func(environ []byte) bool) int {
	self, ownGroup := os.Getpid(), syscall.Getpgrp()
	buf := make([]byte, 16<<10)
	killed := 0
	// A dying process may fork once more; a few rounds catch its children.
	for round := 0; round < 5; round++ {
		found := 0
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return killed
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			// Other users' processes are unreadable here, and not ours.
			env, err := readEnviron(e.Name(), &buf)
			if err != nil || !match(env) {
				continue
			}
			found++
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != ownGroup {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if found == 0 {
			return killed
		}
		killed += found
		time.Sleep(20 * time.Millisecond)
	}
	return killed
}

// readEnviron reads /proc/<pid>/environ into *buf, grown as needed and
// reused: the scan reads every process's.
func readEnviron(pid string, buf *[]byte) ([]byte, error) {
	fd, err := syscall.Open("/proc/"+pid+"/environ", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(*buf) {
			*buf = append(*buf, make([]byte, len(*buf))...)
		}
		m, err := syscall.Read(fd, (*buf)[n:])
		if err != nil {
			return nil, err
		}
		if m <= 0 {
			return (*buf)[:n], nil
		}
		n += m
	}
}

// envEntry finds the entry of a /proc/<pid>/environ block that equals
// entry or, when entry ends with '=', starts with it; nil if none does.
func envEntry(environ, entry []byte) []byte {
	prefix := len(entry) > 0 && entry[len(entry)-1] == '='
	for len(environ) > 0 {
		var e []byte
		e, environ, _ = bytes.Cut(environ, []byte{0})
		if bytes.Equal(e, entry) || prefix && bytes.HasPrefix(e, entry) {
			return e
		}
	}
	return nil
}
