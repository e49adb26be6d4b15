package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWorkerCPUProfile: `taskotron worker --cpu-profile FILE` writes, once
// it stops on SIGTERM, a profile that go tool pprof reads.
func TestWorkerCPUProfile(t *testing.T) {
	checkCPUProfile(t, "worker started", "worker", "--concurrency", "1")
}

// TestResultsDBCPUProfile: and so does `taskotron resultsdb serve`.
func TestResultsDBCPUProfile(t *testing.T) {
	checkCPUProfile(t, "resultsdb serving", "resultsdb", "serve", "--listen", "127.0.0.1:0")
}

// checkCPUProfile runs taskotron with args and --cpu-profile until it logs
// started, stops it and reads the profile.
func checkCPUProfile(t *testing.T, started string, args ...string) {
	dir := t.TempDir()
	bin := buildTaskotron(t)
	prof := filepath.Join(dir, "role.prof")
	cmd := exec.Command(bin, append(args, "--cpu-profile", prof)...)
	var logs lockedBuffer
	cmd.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, "data"), "TASKOTRON_AMQP_URL=", "TASKOTRON_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitLog(t, &logs, started)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, logs.String())
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", bin, prof).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Type: cpu")) {
		t.Fatalf("go tool pprof %s: %v\n%s", prof, err, out)
	}
}
