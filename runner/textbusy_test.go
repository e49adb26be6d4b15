package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCopiedScriptsRunWhileOthersFork: jobs copy their task (with an
// executable script) and run it at once while other jobs start processes.
// A file open for writing when another goroutine forks is open in that
// child until it execs, and running the file then fails with "text file
// busy": the copy must never leave that window.
func TestCopiedScriptsRunWhileOthersFork(t *testing.T) {
	src := t.TempDir()
	script := "#!/bin/sh\nexit 0\n" + string(make([]byte, 0))
	for i := 0; i < 40; i++ {
		script += "# padding so that the copy takes a moment\n"
	}
	if err := os.WriteFile(filepath.Join(src, "check.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var forks sync.WaitGroup
	for i := 0; i < 4; i++ {
		forks.Add(1)
		go func() {
			defer forks.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				exec.Command("true").Run()
			}
		}()
	}
	var busy, runs atomic.Int64
	var jobs sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for j := 0; j < 4; j++ {
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				dst := filepath.Join(t.TempDir(), fmt.Sprint(n))
				if err := copyTree(src, dst); err != nil {
					t.Error(err)
					return
				}
				err := exec.Command(filepath.Join(dst, "check.sh")).Run()
				runs.Add(1)
				if errors.Is(err, syscall.ETXTBSY) {
					busy.Add(1)
				} else if err != nil {
					t.Error(err)
					return
				}
				os.RemoveAll(dst)
			}
		}()
	}
	jobs.Wait()
	close(stop)
	forks.Wait()
	if busy.Load() > 0 {
		t.Fatalf("%d of %d runs of a freshly copied script failed with text file busy", busy.Load(), runs.Load())
	}
	t.Logf("%d runs", runs.Load())
}
