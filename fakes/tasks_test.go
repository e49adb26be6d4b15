package fakes_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/fakes"
	"github.com/taskotron-go/taskotron/runner"
)

// runTask runs one of the real tasks in tasks/ through the runner, against
// the doubles, the way `taskotron runtask` does.
func runTask(t *testing.T, task, item, itemType string) contract.Execution {
	t.Helper()
	exec := runTaskWith(t, task, item, itemType, nil)
	if exec.ExecutionStatus != contract.ExecutionOK {
		log, _ := os.ReadFile(filepath.Join(exec.Artifacts, runner.LogDir, "taskotron.log"))
		t.Fatalf("%s on %s: %s: %s\n%s", task, item, exec.ExecutionStatus, exec.Status, log)
	}
	return exec
}

// runTaskWith lets break the doubles before the run.
func runTaskWith(t *testing.T, task, item, itemType string, breakIt func(*fakes.Set, *config.Config)) contract.Execution {
	t.Helper()
	set, err := fakes.Start("../fixtures", fakes.AnyPort, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	cfg.Koji.YumRepoInfo = "../fixtures/koji/yumrepoinfo.conf"
	set.Apply(&cfg)
	if breakIt != nil {
		breakIt(set, &cfg)
	}
	formula, err := filepath.Abs(filepath.Join("../tasks", task, "runtask.yml"))
	if err != nil {
		t.Fatal(err)
	}
	r := runner.New(runner.Options{Config: cfg})
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: item, ItemType: itemType, TaskName: task, Formula: formula, Arch: "noarch"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

func byCheck(rs []contract.Result) map[string]contract.Result {
	m := map[string]contract.Result{}
	for _, r := range rs {
		m[r.CheckName+" "+r.Item] = r
	}
	return m
}

func TestRpmlintTask(t *testing.T) {
	exec := runTask(t, "rpmlint", "lintbad-0.1-1.fc40", "koji_build")
	if len(exec.Results) != 1 {
		t.Fatalf("results = %+v", exec.Results)
	}
	r := exec.Results[0]
	if r.CheckName != "dist.rpmlint" || r.Outcome != contract.Failed || r.Type != "koji_build" {
		t.Errorf("result = %+v", r)
	}
	if !strings.HasSuffix(r.Note, "warnings") || !strings.Contains(r.Note, "errors") || strings.HasPrefix(r.Note, "0 errors") {
		t.Errorf("note = %q, want N errors, M warnings with errors", r.Note)
	}
	if strings.Join(r.Arch.Names, ",") != "noarch,src" {
		t.Errorf("arch = %v", r.Arch)
	}
	if exec.ExitCode != 100 {
		t.Errorf("exit code = %d, want 100 for a failed check", exec.ExitCode)
	}
	log, err := os.ReadFile(filepath.Join(exec.Artifacts, "lintbad-0.1-1.fc40.log"))
	if err != nil {
		t.Fatalf("rpmlint log artifact: %v", err)
	}
	// The package's rpmlintrc from dist-git filtered these out.
	if strings.Contains(string(log), "non-standard-executable-perm") || !strings.Contains(string(log), "lintbad.rpmlintrc") {
		t.Errorf("the dist-git rpmlintrc was not honoured:\n%s", log)
	}
	if !strings.Contains(string(log), "dir-or-file-in-tmp") {
		t.Errorf("rpmlint log lacks the error:\n%s", log)
	}

	clean := runTask(t, "rpmlint", "pythree-3.1-1.fc40", "koji_build")
	if len(clean.Results) != 1 || clean.Results[0].Outcome != contract.Passed || !strings.HasPrefix(clean.Results[0].Note, "0 errors, ") {
		t.Errorf("pythree = %+v", clean.Results)
	}
	// An arch-specific build (a compiled binary) that rpmlint passes.
	greet := runTask(t, "rpmlint", "greet-1.0-1.fc40", "koji_build")
	if len(greet.Results) != 1 || greet.Results[0].Outcome != contract.Passed || !strings.HasPrefix(greet.Results[0].Note, "0 errors, ") ||
		strings.Join(greet.Results[0].Arch.Names, ",") != "src,x86_64" {
		t.Errorf("greet = %+v", greet.Results)
	}
}

func TestUpgradepathTask(t *testing.T) {
	exec := runTask(t, "upgradepath", "f40-updates-testing-pending", "koji_tag")
	got := byCheck(exec.Results)
	want := map[string]contract.Outcome{
		"dist.upgradepath lintbad-0.1-1.fc40": contract.Passed,
		"dist.upgradepath pyboth-2.0-1.fc40":  contract.Passed, // its epoch 1 beats 2.5 in f39
		"dist.upgradepath pythree-3.1-1.fc40": contract.Failed, // f41 has 3.0
	}
	if len(got) != len(want) {
		t.Fatalf("results = %+v", exec.Results)
	}
	for k, o := range want {
		if got[k].Outcome != o {
			t.Errorf("%s = %s, want %s (%s)", k, got[k].Outcome, o, got[k].Note)
		}
	}
	upd := runTask(t, "upgradepath", "FEDORA-2024-0a1b2c3d4e", "bodhi_update")
	if len(upd.Results) != 1 || upd.Results[0].Type != "bodhi_update" || upd.Results[0].Outcome != contract.Failed ||
		!strings.Contains(upd.Results[0].Note, "pythree-3.1-1.fc40") {
		t.Errorf("update result = %+v", upd.Results)
	}
}

func TestKojiOutageEndsTheJobAborted(t *testing.T) {
	exec := runTaskWith(t, "rpmlint", "lintbad-0.1-1.fc40", "koji_build", func(s *fakes.Set, cfg *config.Config) {
		s.Koji.FailNext(1000)
		cfg.Koji.Retries = 1
	})
	if exec.ExecutionStatus != contract.ExecutionNotOK || len(exec.Results) != 1 {
		t.Fatalf("execution = %+v", exec)
	}
	r := exec.Results[0]
	if r.Outcome != contract.Aborted || !strings.Contains(r.Note, "503") || !strings.Contains(r.Note, "koji") {
		t.Errorf("a hub that stays down must end the job ABORTED with the reason, got %s: %q", r.Outcome, r.Note)
	}
}

func TestMissingBuildIsNotAborted(t *testing.T) {
	exec := runTaskWith(t, "rpmlint", "nosuch-1.0-1.fc40", "koji_build", nil)
	if exec.ExecutionStatus != contract.ExecutionNotOK || len(exec.Results) != 1 {
		t.Fatalf("execution = %+v", exec)
	}
	if r := exec.Results[0]; r.Outcome == contract.Aborted || !strings.Contains(r.Note, "koji build nosuch-1.0-1.fc40: not found") {
		t.Errorf("a build Koji does not know is the item's problem, not an outage: %s %q", r.Outcome, r.Note)
	}
}
