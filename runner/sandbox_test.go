package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/sandbox"
)

// processesWith lists the host pids whose environment holds entry.
func processesWith(t *testing.T, entry string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == entry {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// waitNone waits until no process holds entry in its environment.
func waitNone(t *testing.T, entry, what string) {
	t.Helper()
	var left []int
	for i := 0; i < 100; i++ {
		if left = processesWith(t, entry); len(left) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range left {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Errorf("pid %d still runs: %q", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Fatalf("%s: %d processes left", what, len(left))
}

// TestSandboxedTimeoutKillsEverything: an action that times out in the
// sandbox is killed with everything it started, seen from the host.
func TestSandboxedTimeoutKillsEverything(t *testing.T) {
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.ActionTimeout = 700 * time.Millisecond })
	f := task(t, `name: slow
actions:
  - name: hang
    shell:
      - shell: sh
        script: 'sleep 60 & setsid sleep 61 & echo started > "$1/started"; sleep 60'
        args: ["${artifactsdir}"]
`, nil)
	start := time.Now()
	ex, err := r.Run(context.Background(), contract.RunnerInput{UUID: "sbx-timeout", Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	if ex.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(ex.Status, "action timeout (700ms) reached") {
		t.Fatalf("%+v", ex)
	}
	if len(ex.Results) != 1 || ex.Results[0].Outcome != contract.Aborted {
		t.Fatalf("results: %+v", ex.Results)
	}
	if _, err := os.Stat(filepath.Join(ex.Artifacts, "started")); err != nil {
		t.Fatalf("the task did not start its background processes: %v", err)
	}
	waitNone(t, "TASKOTRON_UUID=sbx-timeout", "after the timeout")
}

// TestSandboxedDaemonDiesWithItsProcess: what a task leaves running in the
// background (in a session of its own) ends when its process does.
func TestSandboxedDaemonDiesWithItsProcess(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, `name: daemon
actions:
  - shell:
      - shell: sh
        script: 'setsid sh -c "exec sleep 60" >/dev/null 2>&1 & echo started > "$1/started"'
        args: ["${artifactsdir}"]
`, nil)
	ex, err := r.Run(context.Background(), contract.RunnerInput{UUID: "sbx-daemon", Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if err != nil || ex.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%v %+v", err, ex)
	}
	if _, err := os.Stat(filepath.Join(ex.Artifacts, "started")); err != nil {
		t.Fatalf("the task did not start its daemon: %v", err)
	}
	waitNone(t, "TASKOTRON_UUID=sbx-daemon", "after the run")
}

// TestOrphanedSandboxIsKilledFromTheHost: a sandbox whose worker died (its
// TASKOTRON_RUNNER mark is dead) is found and killed, processes inside
// included, by the host-side scan of /proc/*/environ (KillOrphans), and a
// rerun's killLeftovers finds one by its uuid.
func TestOrphanedSandboxIsKilledFromTheHost(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadMark := fmt.Sprintf("%d-1", gone.Process.Pid)
	for _, tc := range []struct {
		uuid string
		kill func() int
	}{
		{"sbx-orphan", KillOrphans},
		{"sbx-again", func() int { return killLeftovers("sbx-again") }},
	} {
		name, args, err := sandbox.Command("auto", sandbox.Spec{Dir: "/"}, []string{"sh", "-c", "sleep 60 & setsid sleep 61 & exec sleep 62"})
		if err != nil {
			t.Fatal(err)
		}
		c := exec.Command(name, args...)
		c.Env = []string{"PATH=/usr/bin:/bin", "TASKOTRON_UUID=" + tc.uuid, directives.RunnerEnv + "=" + deadMark}
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
		exited := make(chan struct{})
		go func() { c.Wait(); close(exited) }()
		entry := "TASKOTRON_UUID=" + tc.uuid
		// bwrap, its PID 1 and the three sleeps.
		var n int
		for i := 0; i < 100 && n < 5; i++ {
			n = len(processesWith(t, entry))
			time.Sleep(20 * time.Millisecond)
		}
		if n < 5 {
			t.Fatalf("%s: %d processes of the sandbox seen from the host, want 5", tc.uuid, n)
		}
		if killed := tc.kill(); killed < 1 {
			t.Fatalf("%s: nothing killed", tc.uuid)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: bwrap still runs", tc.uuid)
		}
		waitNone(t, entry, tc.uuid)
	}
}

// TestRunnerFilesDoNotFollowPlantedSymlinks: a task that puts symlinks where
// the runner writes its next action's logs and execution.json, or swaps the
// runner's folder for a symlink, changes nothing outside the artifacts:
// the runner's files are new files in its own folder. Sandboxed or not.
func TestRunnerFilesDoNotFollowPlantedSymlinks(t *testing.T) {
	for _, mode := range []string{"auto", "off"} {
		t.Run(mode, func(t *testing.T) {
			r, _ := testRunner(t, func(c *config.Config) { c.Runner.Sandbox = mode })
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f := task(t, `name: planter
actions:
  - name: plant
    shell:
      - shell: sh
        script: 'cd "$1/taskotron" && for n in 02-second.stdout 02-second.stderr execution.json .execution.json.new; do ln -s "$2" "$n"; done'
        args: ["${artifactsdir}", "${victim}"]
  - name: second
    shell:
      - shell: sh
        script: 'echo second-out; echo second-err >&2'
  - name: swap the folder
    shell:
      - shell: sh
        script: 'mv "$1/taskotron" "$1/moved" && ln -s "$2" "$1/taskotron"'
        args: ["${artifactsdir}", "${outside}"]
  - name: third
    shell:
      - shell: sh
        script: 'echo third-out'
`, nil)
			ex, err := r.Run(context.Background(), contract.RunnerInput{UUID: "planted-" + mode, Item: "a", ItemType: "koji_build", Formula: f}, map[string]string{"victim": victim, "outside": outside})
			if err != nil || ex.ExecutionStatus != contract.ExecutionOK {
				t.Fatalf("%v %+v", err, ex)
			}
			if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
				t.Fatalf("the file outside the artifacts was written through a planted symlink: %q", got)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("the runner wrote into the folder its own was swapped for: %v", names)
			}
			// The runner's files are where it made them: in its folder,
			// which the task moved.
			dir := filepath.Join(ex.Artifacts, "moved")
			for name, want := range map[string]string{"02-second.stdout": "second-out\n", "02-second.stderr": "second-err\n", "04-third.stdout": "third-out\n"} {
				fi, err := os.Lstat(filepath.Join(dir, name))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: %v %v", name, fi, err)
					continue
				}
				if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, "execution.json"))
			var back contract.Execution
			if err != nil || json.Unmarshal(raw, &back) != nil || back.UUID != "planted-"+mode {
				t.Errorf("execution.json: %v %q", err, raw)
			}
			if log, _ := os.ReadFile(filepath.Join(dir, "taskotron.log")); !strings.Contains(string(log), "run finished") {
				t.Errorf("taskotron.log:\n%s", log)
			}
			// The link that leads out of the artifacts is gone (published
			// folders hold none).
			if _, err := os.Lstat(filepath.Join(ex.Artifacts, "taskotron")); !os.IsNotExist(err) {
				t.Errorf("the symlink the task made of the runner's folder is still there: %v", err)
			}
		})
	}
}
