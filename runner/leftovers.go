package runner

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
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
	self, ownGroup := os.Getpid(), syscall.Getpgrp()
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
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err != nil || !hasEnvEntry(env, want) {
				continue
			}
			found++
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != ownGroup {
				// Members that scrubbed their environment too.
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

// hasEnvEntry tells whether a /proc/<pid>/environ block holds entry exactly.
func hasEnvEntry(environ, entry []byte) bool {
	for len(environ) > 0 {
		var e []byte
		e, environ, _ = bytes.Cut(environ, []byte{0})
		if bytes.Equal(e, entry) {
			return true
		}
	}
	return false
}
