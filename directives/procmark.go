package directives

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// RunnerEnv names the variable that marks every task process with the
// process that started it, so that what a dead worker left running can be
// told from what a live one runs.
const RunnerEnv = "TASKOTRON_RUNNER"

var (
	markOnce sync.Once
	mark     string
)

// ProcessMark identifies this process: its pid and start time, which
// together never name another process, even after the pid is reused.
func ProcessMark() string {
	markOnce.Do(func() { mark = processMark(os.Getpid()) })
	return mark
}

// MarkAlive tells whether the process a mark names still runs.
func MarkAlive(m string) bool {
	pidStr, _, ok := strings.Cut(m, "-")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	return processMark(pid) == m
}

// processMark reads the start time (field 22 of /proc/<pid>/stat); "" when
// the process is gone.
func processMark(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(raw)
	// The command name (field 2) may hold spaces and parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 || fields[0] == "Z" {
		return ""
	}
	return fmt.Sprintf("%d-%s", pid, fields[19])
}
