package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/results"
)

// A task whose TAP13 file holds more results than a run keeps in memory:
// they are read as a stream into the run's spill file, then written again,
// in order and with their artifacts checked, to the artifacts' results
// file, and their details moved to its details file, which the execution
// names; the spill is gone with the run's folder.
func TestResultsPastTheMemoryBoundGoToTheArtifacts(t *testing.T) {
	r, _ := testRunner(t, nil)
	n := directives.MemoryResults + 50
	// The script writes the TAP file: tests 1..n, test 2 pointing at an
	// artifact it made, test 3 at one outside the artifacts.
	script := `#!/bin/sh
set -e
echo hi > "$2/a.log"
{
  echo "TAP version 13"
  echo "1..$1"
  i=1
  while [ "$i" -le "$1" ]; do
    case $i in
      2) printf 'ok %d - two\n  ---\n  item: xchat-0.5-1.fc20\n  artifact: a.log\n  details:\n    output: two said this\n  ...\n' "$i" ;;
      3) printf 'not ok %d - three\n  ---\n  item: xchat-0.5-1.fc20\n  artifact: ../../../etc/passwd\n  ...\n' "$i" ;;
      *) echo "ok $i - test $i" ;;
    esac
    i=$((i+1))
  done
} > "$3/out.tap"
`
	f := task(t, `name: many
namespace: scratch
actions:
  - shell:
      - [./many.sh, "${count}", "${artifactsdir}", "${workdir}"]
  - resultsdb:
      file: ${workdir}/out.tap
    export: summary
`, map[string]string{"many.sh": script})
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Formula: f}, map[string]string{"count": fmt.Sprint(n)})
	if err != nil || exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%v %+v", err, exec)
	}
	if want := filepath.Join(LogDir, ResultsFile); exec.ResultsFile != want || exec.NumResults() != n || len(exec.Results) != 0 {
		t.Fatalf("results file %q with %d results (%d in memory); want %q with %d", exec.ResultsFile, exec.NumResults(), len(exec.Results), want, n)
	}
	i := 0
	err = results.Each(exec, func(res contract.Result) error {
		i++
		want := map[int]string{2: "a.log"}[i]
		if res.Artifact != want || res.CheckName != "scratch.many" || res.Item != "xchat-0.5-1.fc20" {
			return fmt.Errorf("result %d: %+v; want checkname scratch.many, artifact %q", i, res, want)
		}
		if d, _ := res.Details.(map[string]any); (i == 2) != (d["output"] == "two said this") {
			return fmt.Errorf("result %d: details %#v", i, res.Details)
		}
		if (i == 3) != (res.Outcome == contract.Failed) {
			return fmt.Errorf("result %d: outcome %s", i, res.Outcome)
		}
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("read %d results of %d: %v", i, n, err)
	}
	raw, err := os.ReadFile(filepath.Join(exec.Artifacts, LogDir, "execution.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk contract.Execution
	if err := json.Unmarshal(raw, &onDisk); err != nil || onDisk.ResultsFile != exec.ResultsFile || onDisk.DetailsFile != filepath.Join(LogDir, DetailsFile) || onDisk.ResultCount != n {
		t.Errorf("execution.json names results file %q, details file %q with %d results (%v)", onDisk.ResultsFile, onDisk.DetailsFile, onDisk.ResultCount, err)
	}
	if spills, _ := filepath.Glob(filepath.Join(r.workRoot(), "*", "results.spill*")); len(spills) > 0 {
		t.Errorf("spill files left: %v", spills)
	}
	log, _ := os.ReadFile(filepath.Join(exec.Artifacts, LogDir, "taskotron.log"))
	if !strings.Contains(string(log), "result artifact dropped") || !strings.Contains(string(log), "etc/passwd") {
		t.Errorf("runner log does not say why result 3's artifact was dropped")
	}
}

// Results that cannot be kept (here a task planted a folder where the
// results file goes) end the run broken on the infrastructure, with a
// terminal result, rather than naming a file that is not there.
func TestResultsThatCannotBeKeptEndTheRunBroken(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, `name: many
actions:
  - shell:
      - [sh, -c, 'mkdir -p "$$1/taskotron/results.jsonl/x" && { echo "TAP version 13"; i=1; while [ $$i -le $$0 ]; do echo "ok $$i"; i=$$((i+1)); done; echo "1..$$0"; } > "$$2/out.tap"', "${count}", "${artifactsdir}", "${workdir}"]
  - resultsdb:
      file: ${workdir}/out.tap
`, nil)
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Formula: f}, map[string]string{"count": fmt.Sprint(directives.MemoryResults + 1)})
	if err != nil {
		t.Fatal(err)
	}
	if exec.ExecutionStatus != contract.ExecutionNotOK || !exec.Infra || exec.ResultsFile != "" || len(exec.Results) != 1 || !strings.Contains(exec.Status, "results file") || !strings.Contains(exec.Status, "results.jsonl") {
		t.Fatalf("execution %+v; want NOT_OK on the infrastructure, one terminal result, no results file", exec)
	}
	if o := exec.Results[0].Outcome; !o.Broken() {
		t.Errorf("terminal result %s, want CRASHED or ABORTED", o)
	}
}

// Spilled results that name no artifact are moved as they are, on the
// artifacts' filesystem or onto another one (copied there): the files read
// back whole, in order, with the details, readable to all, and a symlink
// the task planted where they go is replaced, not written through.
func TestSpilledResultsWithoutArtifactsReadBack(t *testing.T) {
	for _, layout := range []struct{ name, artifacts string }{
		{"same filesystem", ""},
		{"artifacts on another filesystem", otherFilesystem(t)},
	} {
		t.Run(layout.name, func(t *testing.T) {
			r, _ := testRunner(t, func(c *config.Config) {
				if layout.artifacts != "" {
					c.Runner.ArtifactsDir = layout.artifacts
				}
			})
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("keep me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f := task(t, `name: many
actions:
  - shell:
      - [sh, -c, 'mkdir -p "$$2/taskotron" && ln -s "$$3" "$$2/taskotron/results.jsonl" && ln -s "$$3" "$$2/taskotron/results-details.jsonl" && { echo "TAP version 13"; printf "ok 1 - test 1\n  ---\n  details:\n    output: first\n  ...\n"; i=2; while [ $$i -le $$0 ]; do echo "ok $$i - test $$i"; i=$$((i+1)); done; echo "1..$$0"; } > "$$1/out.tap"', "${count}", "${workdir}", "${artifactsdir}", "${victim}"]
  - resultsdb:
      file: ${workdir}/out.tap
`, nil)
			n := directives.MemoryResults + 7
			exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Formula: f}, map[string]string{"count": fmt.Sprint(n), "victim": victim})
			if err != nil || exec.ExecutionStatus != contract.ExecutionOK || exec.NumResults() != n {
				t.Fatalf("%v %+v", err, exec)
			}
			i := 0
			if err := results.Each(exec, func(res contract.Result) error {
				i++
				if res.Outcome != contract.Passed || res.Item != "xchat-0.5-1.fc20" || res.CheckName != "many" {
					return fmt.Errorf("result %d: %+v", i, res)
				}
				if d, _ := res.Details.(map[string]any); (i == 1) != (d["output"] == "first") {
					return fmt.Errorf("result %d: details %#v", i, res.Details)
				}
				return nil
			}); err != nil || i != n {
				t.Fatalf("read %d of %d: %v", i, n, err)
			}
			if got, _ := os.ReadFile(victim); string(got) != "keep me\n" {
				t.Errorf("the planted symlink was written through: its target holds %q", got)
			}
			for _, name := range []string{exec.ResultsFile, exec.DetailsFile} {
				fi, err := os.Lstat(filepath.Join(exec.Artifacts, name))
				if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: %v %v; want a regular file, mode 0644", name, fi.Mode(), err)
				}
			}
			if spills, _ := filepath.Glob(filepath.Join(r.workRoot(), "*", "results.spill*")); len(spills) > 0 {
				t.Errorf("spill files left: %v", spills)
			}
		})
	}
}

// otherFilesystem is a folder on a filesystem other than the test's
// temporary folder's: /dev/shm, a tmpfs on Linux.
func otherFilesystem(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "artifacts")
	if err != nil {
		t.Fatalf("a folder on another filesystem: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var a, b syscall.Stat_t
	if err := errors.Join(syscall.Stat(dir, &a), syscall.Stat(t.TempDir(), &b)); err != nil || a.Dev == b.Dev {
		t.Fatalf("%s is not on another filesystem than %s (%v)", dir, os.TempDir(), err)
	}
	return dir
}
