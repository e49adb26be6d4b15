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
	dir := t.TempDir()
	bin := buildTaskotron(t)
	prof := filepath.Join(dir, "worker.prof")
	cmd := exec.Command(bin, "worker", "--concurrency", "1", "--cpu-profile", prof)
	var logs lockedBuffer
	cmd.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, "data"), "TASKOTRON_AMQP_URL=", "TASKOTRON_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitLog(t, &logs, "worker started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, logs.String())
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", bin, prof).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Type: cpu")) {
		t.Fatalf("go tool pprof %s: %v\n%s", prof, err, out)
	}
}
