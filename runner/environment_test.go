package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/runner/formula"
)

// fakeCommand writes an executable shell script named name into dir.
func fakeCommand(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A task whose tools are missing ends ABORTED before its first action, with
// one line naming each missing thing and the Debian packages to install,
// and is not retried.
func TestMissingEnvironmentAbortsBeforeTheFirstAction(t *testing.T) {
	r, progress := testRunner(t, nil)
	marker := filepath.Join(t.TempDir(), "ran")
	f := task(t, `name: lint
namespace: dist
environment:
  rpm: [rpm, cpio, rpmlint, /no/such/file, some-fedora-only-package]
actions:
  - name: first
    shell: [[/bin/touch, `+marker+`]]
`, nil)
	t.Setenv("PATH", t.TempDir()) // an empty folder: no command at all
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1.fc40", ItemType: "koji_build", Arch: "x86_64", Formula: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the first action ran although the environment was missing")
	}
	if progress.Len() != 0 {
		t.Errorf("actions started: %q", progress.String())
	}
	if exec.ExecutionStatus != contract.ExecutionNotOK || exec.Outcome != contract.Aborted || exec.Infra {
		t.Fatalf("execution %s outcome %s infra %v, want NOT_OK, ABORTED, not infra (not retried)", exec.ExecutionStatus, exec.Outcome, exec.Infra)
	}
	if len(exec.Results) != 1 || exec.Results[0].Outcome != contract.Aborted || exec.Results[0].CheckName != "dist.lint" {
		t.Fatalf("results %+v", exec.Results)
	}
	want := []string{
		"runtask.yml: environment.rpm: this machine lacks ",
		"rpm (no rpm command in PATH)", "rpm (no rpm2cpio command in PATH)",
		"cpio (no cpio command in PATH)", "rpmlint (no rpmlint command in PATH)",
		"/no/such/file (no such file)",
		"; install the Debian packages: apt-get install cpio rpm rpm2cpio rpmlint",
	}
	for _, w := range want {
		if !strings.Contains(exec.Status, w) {
			t.Errorf("status %q does not say %q", exec.Status, w)
		}
	}
	if strings.Contains(exec.Status, "some-fedora-only-package") || strings.Contains(exec.Status, "\n") {
		t.Errorf("status %q: an unknown name is not checked, and the status is one line", exec.Status)
	}
	if exec.Results[0].Note != exec.Status {
		t.Errorf("note %q, want the status", exec.Results[0].Note)
	}
	log, err := os.ReadFile(filepath.Join(exec.Artifacts, LogDir, "taskotron.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "no Debian equivalent known, not checked") || !strings.Contains(string(log), "some-fedora-only-package") {
		t.Errorf("the unknown name is not logged:\n%s", log)
	}
}

func TestPresentEnvironmentLetsTheTaskRun(t *testing.T) {
	bin := t.TempDir()
	for _, c := range []string{"rpm", "rpm2cpio", "cpio", "rpmlint"} {
		fakeCommand(t, bin, c, "exit 0")
	}
	args := filepath.Join(t.TempDir(), "python-args")
	python := fakeCommand(t, bin, "fake-python", `echo "$@" > `+args)
	// Unsandboxed: the marker must be where a task could write it.
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Python = python; c.Runner.Sandbox = "off" })
	marker := filepath.Join(t.TempDir(), "ran")
	present := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(present, nil, 0o644)
	f := task(t, `name: lint
environment:
  rpm: [rpm, cpio, rpmlint, python3-rpm, `+present+`]
actions:
  - name: first
    shell: [[/bin/touch, `+marker+`]]
`, nil)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1.fc40", ItemType: "koji_build", Formula: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("execution %+v", exec)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the first action did not run")
	}
	got, err := os.ReadFile(args)
	if err != nil || strings.TrimSpace(string(got)) != "-c import rpm" {
		t.Errorf("python3-rpm was checked with %q (%v), want runner.python -c 'import rpm'", got, err)
	}
}

func TestMissingPythonModuleNamesItsDebianPackage(t *testing.T) {
	python := fakeCommand(t, t.TempDir(), "fake-python", "echo 'ModuleNotFoundError: No module named rpm' >&2; exit 1")
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Python = python })
	f := task(t, "name: up\nenvironment:\n  rpm: [python3-rpm]\nactions:\n  - shell: [[/bin/true]]\n", nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "f40", ItemType: "koji_tag", Formula: f}, nil)
	want := "this machine lacks python3-rpm (" + python + " cannot import the Python module rpm); install the Debian package: apt-get install python3-rpm"
	if exec.Outcome != contract.Aborted || exec.Infra || !strings.Contains(exec.Status, want) {
		t.Errorf("outcome %s infra %v status %q, want ABORTED, not infra, %q", exec.Outcome, exec.Infra, exec.Status, want)
	}
}

func TestMalformedEnvironmentRPMIsAFormulaError(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, "name: t\nenvironment:\n  rpm: {rpmlint: yes}\nactions:\n  - shell: [[/bin/true]]\n", nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1", ItemType: "koji_build", Formula: f}, nil)
	if exec.ExecutionStatus != contract.ExecutionNotOK || exec.Outcome != contract.Crashed ||
		!strings.Contains(exec.Status, "runtask.yml: environment.rpm must be a list of package names or file paths") {
		t.Errorf("outcome %s status %q", exec.Outcome, exec.Status)
	}
}

// scriptTools is what scripts/env.sh --list PROFILE says the profile
// installs: command -> Debian package.
func scriptTools(t *testing.T, profile string) map[string]string {
	t.Helper()
	out, err := exec.Command("bash", "../scripts/env.sh", "--list", profile).Output()
	if err != nil {
		t.Fatalf("scripts/env.sh --list %s: %v", profile, err)
	}
	tools := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		cmd, pkg, ok := strings.Cut(line, " ")
		if !ok || cmd == "" || pkg == "" || strings.Contains(pkg, " ") {
			t.Fatalf("scripts/env.sh --list %s: line %q is not \"command package\"", profile, line)
		}
		tools[cmd] = pkg
	}
	return tools
}

// tasksNeed is what the real tasks need on Debian, by their
// environment.rpm: command -> package, python3 (runner.python) included.
func tasksNeed(t *testing.T) map[string]string {
	t.Helper()
	formulas, _ := filepath.Glob("../tasks/*/runtask.yml")
	if len(formulas) < 4 {
		t.Fatalf("tasks: %v", formulas)
	}
	needed := map[string]string{"python3": "python3"} // runner.python, for every python action
	for _, p := range formulas {
		f, err := formula.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		names, err := environmentRPMs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			provs, ok := debianProvides[name]
			if !ok {
				t.Errorf("%s: environment.rpm %q has no Debian equivalent in debianProvides", p, name)
			}
			for _, pr := range provs {
				if pr.Command == "" {
					t.Errorf("%s: %q needs the Python module %s: scripts/env.sh checks commands only", p, name, pr.PythonModule)
					continue
				}
				needed[pr.Command] = pr.Debian
			}
		}
	}
	return needed
}

// What the real tasks ask for in environment.rpm is known here, and the
// install script's tools profile (make run, the container image) installs
// exactly the Debian packages that provide it, with the same commands.
func TestInstallScriptProvidesWhatTheTasksNeed(t *testing.T) {
	tools := scriptTools(t, "tools")
	testTools := scriptTools(t, "test")
	needed := tasksNeed(t)
	for cmd, pkg := range needed {
		if tools[cmd] != pkg {
			t.Errorf("the tasks need %s (Debian %s); scripts/env.sh tools installs %s from %q", cmd, pkg, cmd, tools[cmd])
		}
	}
	var extra []string
	for cmd := range tools {
		if _, ok := needed[cmd]; !ok && cmd != "bwrap" { // bwrap: the sandbox the tasks run in
			extra = append(extra, cmd)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("scripts/env.sh tools installs %v, which no task needs (the test tools go in TEST_TOOLS)", extra)
	}
	// make test installs what make run does, and where the map and the
	// test tools name the same command, they name the same package.
	for cmd, pkg := range tools {
		if testTools[cmd] != pkg {
			t.Errorf("scripts/env.sh test: %s from %q, tools has %q", cmd, testTools[cmd], pkg)
		}
	}
	for _, provs := range debianProvides {
		for _, pr := range provs {
			if pkg, ok := testTools[pr.Command]; ok && pkg != pr.Debian {
				t.Errorf("%s: debianProvides says Debian %s, scripts/env.sh test says %s", pr.Command, pr.Debian, pkg)
			}
		}
	}
}
