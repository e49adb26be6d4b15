package runner

import (
	"bytes"
	"context"
	"encoding/json"
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
)

// testRunner makes a runner whose data lives in a temporary folder.
func testRunner(t *testing.T, tune func(*config.Config)) (*Runner, *bytes.Buffer) {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	if tune != nil {
		tune(&cfg)
	}
	var progress bytes.Buffer
	return New(Options{Config: cfg, Progress: &progress}), &progress
}

// task writes a task folder with a formula and files; it returns the formula path.
func task(t *testing.T, formula string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		perm := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			perm = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "runtask.yml")
	if err := os.WriteFile(p, []byte(formula), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exampleFormula(t *testing.T) string {
	p, err := filepath.Abs("../tasks/nvr-format/runtask.yml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunExampleTaskPasses(t *testing.T) {
	r, progress := testRunner(t, nil)
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", UUID: "u-1", Formula: exampleFormula(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exec.ExecutionStatus != contract.ExecutionOK || exec.ExitCode != 0 {
		t.Fatalf("execution: %+v", exec)
	}
	if len(exec.Results) != 1 {
		t.Fatalf("results: %+v", exec.Results)
	}
	res := exec.Results[0]
	if res.Outcome != contract.Passed || res.CheckName != "dist.nvr-format" || res.Item != "xchat-0.5-1.fc20" || res.Type != "koji_build" || res.Arch.String() != "x86_64" {
		t.Fatalf("result: %+v", res)
	}
	if exec.TaskName != "nvr-format" || exec.Item != "xchat-0.5-1.fc20" || exec.ItemType != "koji_build" || exec.Arch != "x86_64" || exec.UUID != "u-1" {
		t.Fatalf("execution identity: %+v", exec)
	}
	for _, f := range []string{"taskotron/taskotron.log", "taskotron/01-check-the-item-format.stdout", "taskotron/execution.json"} {
		if _, err := os.Stat(filepath.Join(exec.Artifacts, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	if !strings.HasSuffix(exec.Artifacts, "/artifacts/u-1") {
		t.Errorf("artifacts folder %s", exec.Artifacts)
	}
	if got := progress.String(); !strings.Contains(got, "[1/3] check the item format (shell) ... ok") || !strings.Contains(got, "[3/3] set the exit code (exitcode) ... ok") {
		t.Errorf("progress:\n%s", got)
	}
}

func TestRunExampleTaskFailsWithExitCode100(t *testing.T) {
	r, _ := testRunner(t, nil)
	for _, in := range []contract.RunnerInput{
		{Item: "notannvr", ItemType: "koji_build"},
		{Item: "FEDORA-2024-xyz", ItemType: "bodhi_update"},
	} {
		in.Formula = exampleFormula(t)
		exec, err := r.Run(context.Background(), in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if exec.ExecutionStatus != contract.ExecutionOK || exec.ExitCode != 100 || len(exec.Results) != 1 || exec.Results[0].Outcome != contract.Failed {
			t.Fatalf("%s: %+v", in.Item, exec)
		}
	}
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "FEDORA-2019-02cd019281", ItemType: "bodhi_update", Formula: exampleFormula(t)}, nil)
	if exec.ExitCode != 0 || exec.Results[0].Outcome != contract.Passed || exec.Results[0].Arch.String() != "noarch" {
		t.Fatalf("bodhi update: %+v", exec)
	}
}

func TestInputArgsCheckedBeforeAnythingRuns(t *testing.T) {
	// Unsandboxed: the marker must be where a task could write it.
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Sandbox = "off" })
	marker := filepath.Join(t.TempDir(), "ran")
	f := task(t, "name: t\ninput:\n  args: [koji_build]\nactions:\n  - shell: [[touch, "+marker+"]]\n", nil)
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "f40", ItemType: "koji_tag", Formula: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exec.ExecutionStatus != contract.ExecutionNotOK || exec.ExitCode == 0 || exec.ExitCode == 100 {
		t.Fatalf("execution: %+v", exec)
	}
	if !strings.Contains(exec.Status, "runtask.yml:3: input.args needs koji_build, but the item type is \"koji_tag\"") {
		t.Fatalf("status: %s", exec.Status)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("an action ran although input.args was not satisfied")
	}
	if len(exec.Results) != 1 || exec.Results[0].Outcome != contract.Crashed || exec.Results[0].CheckName != "t" || exec.Results[0].Item != "f40" {
		t.Fatalf("terminal result: %+v", exec.Results)
	}
}

func TestFormulaErrorsAreReported(t *testing.T) {
	r, _ := testRunner(t, nil)
	cases := map[string]string{
		"name: t\nactions:\n  - name: first\n    shell: [echo hi]\n  - name: second\n    dummy:\n      result: PASS\n      msg: ${nope}\n": `runtask.yml:5: action "second": undefined variable "nope"`,
		"name: t\nactions:\n  - name: first\n    frobnicate: {}\n":                                                                         `runtask.yml:3: action "first": unknown directive "frobnicate"`,
		"name: t\nactions:\n  - name: a\n    shell:\n      - echo ${nope}\n":                                                               `runtask.yml:3: action "a": command 1: undefined variable "nope"`,
		"name: t\nactions:\n  - name: a\n    dummy: {result: FAIL, msg: broken on purpose}\n":                                              `runtask.yml:3: action "a": broken on purpose`,
		"name: t\nactions: [\n": "runtask.yml:",
	}
	for src, want := range cases {
		exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1", ItemType: "koji_build", Formula: task(t, src, nil)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if exec.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(exec.Status, want) || exec.ExitCode != 1 {
			t.Errorf("%q:\n got %q\nwant %q", src, exec.Status, want)
		}
	}
}

func TestVariablesOverridesAndExports(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, `name: vars
namespace: scratch
actions:
  - name: print
    shell:
      - [printf, "%s|", "${item}", "${type}", "${koji_build}", "${arch}", "${uuid}", "${jobid}", "${taskname}", "${checkname}", "${namespace}", "${extra}"]
    export: printed
  - name: list
    python:
      file: lib.py
      callable: data
      item: ${item}
    export: data
  - name: use
    shell:
      - [printf, "%s,", "${data.list}", "${data.map.key}", "${printed}"]
    export: used
`, map[string]string{"lib.py": "def data(item):\n    return {'list': ['a', item], 'map': {'key': 'v'}}\n"})
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "a-1-1", ItemType: "koji_build", UUID: "uu", JobID: "builder/7", Formula: f}, map[string]string{"extra": "E", "arch": "s390x"})
	if err != nil {
		t.Fatal(err)
	}
	if exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%+v", exec)
	}
	out, _ := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", "03-use.stdout"))
	want := "a,a-1-1,v,a-1-1|koji_build|a-1-1|s390x|uu|builder/7|vars|vars|scratch|E|,"
	if string(out) != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
}

func TestExitCodeWorstWins(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, `name: ec
actions:
  - exitcode:
      result_worst: "results: [{item: a, type: koji_build, outcome: FAILED}, {item: a, type: koji_build, outcome: PASSED}]"
  - exitcode:
      result_last: "results: [{item: a, type: koji_build, outcome: FAILED}, {item: a, type: koji_build, outcome: INFO}]"
`, nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if exec.ExecutionStatus != contract.ExecutionOK || exec.ExitCode != 100 {
		t.Fatalf("%+v", exec)
	}
	if len(exec.Results) != 0 {
		t.Fatalf("exitcode handed results over: %+v", exec.Results)
	}
}

// TestActionTimeoutKillsTheProcessGroup runs unsandboxed: the pid it
// checks is the host's (sandboxed: TestSandboxedTimeoutKillsEverything).
func TestActionTimeoutKillsTheProcessGroup(t *testing.T) {
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.ActionTimeout = 700 * time.Millisecond; c.Runner.Sandbox = "off" })
	pidFile := filepath.Join(t.TempDir(), "pid")
	f := task(t, `name: slow
actions:
  - name: hang
    shell:
      - shell: sh
        script: 'sleep 60 & echo $! > "$1"; sleep 60'
        args: ["${pidfile}"]
`, nil)
	start := time.Now()
	exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, map[string]string{"pidfile": pidFile})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	if exec.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(exec.Status, "action timeout (700ms) reached") {
		t.Fatalf("%+v", exec)
	}
	if len(exec.Results) != 1 || exec.Results[0].Outcome != contract.Aborted {
		t.Fatalf("results: %+v", exec.Results)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(raw))
	for i := 0; i < 50; i++ {
		if st, err := os.ReadFile("/proc/" + pid + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("background child %s survived the timeout", pid)
}

func TestJobTimeout(t *testing.T) {
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.JobTimeout = 500 * time.Millisecond })
	f := task(t, "name: slow\nactions:\n  - shell: [sleep 0.1]\n  - shell: [sleep 30]\n", nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if exec.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(exec.Status, "job timeout (500ms) reached") {
		t.Fatalf("%+v", exec)
	}
}

func TestInterruptedRunSaysSo(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, "name: slow\nactions:\n  - shell: [sleep 30]\n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := r.Run(ctx, contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if err == nil || !strings.Contains(err.Error(), ErrInterrupted.Error()) {
		t.Fatalf("got %v", err)
	}
}

func TestOutputIsCapped(t *testing.T) {
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.MaxOutput = 1000 })
	f := task(t, "name: loud\nactions:\n  - name: loud\n    shell: [[sh, -c, 'head -c 1000000 /dev/zero | tr \"\\\\0\" x; head -c 50000 /dev/zero >&2']]\n    export: out\n", nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%+v", exec)
	}
	for _, name := range []string{"01-loud.stdout", "01-loud.stderr"} {
		fi, err := os.Stat(filepath.Join(exec.Artifacts, "taskotron", name))
		if err != nil || fi.Size() > 1200 || fi.Size() < 1000 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	log, _ := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", "01-loud.stdout"))
	if !strings.Contains(string(log), "999000 bytes dropped") {
		t.Fatalf("no truncation note: %q", log[len(log)-100:])
	}
}

func TestEnvironmentIsScrubbed(t *testing.T) {
	t.Setenv("TASKOTRON_TEST_SECRET", "s3cret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
	r, _ := testRunner(t, nil)
	f := task(t, "name: env\nactions:\n  - name: env\n    shell: [env]\n", nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "a-1-1", ItemType: "koji_build", Formula: f}, nil)
	out, _ := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", "01-env.stdout"))
	if strings.Contains(string(out), "s3cret") {
		t.Fatalf("secret leaked into the task:\n%s", out)
	}
	for _, want := range []string{"PATH=", "TASKOTRON_ITEM=a-1-1", "TASKOTRON_TYPE=koji_build", "TASKOTRON_ARTIFACTSDIR=" + exec.Artifacts, "TASKOTRON_RUNNER=" + directives.ProcessMark()} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
}

func TestArtifactsMustStayInside(t *testing.T) {
	r, _ := testRunner(t, nil)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("x"), 0o644)
	f := task(t, `name: art
actions:
  - shell:
      - [sh, -c, 'mkdir -p "$$0/logs" && echo hi > "$$0/logs/a.log" && ln -s "$$1" "$$0/link" && ln -s a.log "$$0/logs/inner" && ln -s / "$$0/logs/root"', "${artifactsdir}", "${outside}"]
  - resultsdb:
      results: |
        results:
          - {item: a, type: koji_build, outcome: PASSED, checkname: good, artifact: logs/a.log}
          - {item: a, type: koji_build, outcome: PASSED, checkname: abs, artifact: "${artifactsdir}/logs/a.log"}
          - {item: a, type: koji_build, outcome: PASSED, checkname: dotdot, artifact: ../../../etc/passwd}
          - {item: a, type: koji_build, outcome: PASSED, checkname: link, artifact: link}
          - {item: a, type: koji_build, outcome: PASSED, checkname: missing, artifact: nope.log}
`, nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, map[string]string{"outside": outside})
	if exec.ExecutionStatus != contract.ExecutionOK || len(exec.Results) != 5 {
		t.Fatalf("%+v", exec)
	}
	want := map[string]string{"good": "logs/a.log", "abs": "logs/a.log", "dotdot": "", "link": "", "missing": ""}
	for _, res := range exec.Results {
		if res.Artifact != want[res.CheckName] {
			t.Errorf("%s: artifact %q, want %q", res.CheckName, res.Artifact, want[res.CheckName])
		}
	}
	log, _ := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", "taskotron.log"))
	if !strings.Contains(string(log), "outside the artifacts folder") || !strings.Contains(string(log), "leads out of them") {
		t.Errorf("runner log does not say why an artifact or a symlink was dropped:\n%s", log)
	}
	// The folder is published: links out of it are gone, links inside stay.
	for _, gone := range []string{"link", "logs/root"} {
		if _, err := os.Lstat(filepath.Join(exec.Artifacts, gone)); !os.IsNotExist(err) {
			t.Errorf("symlink %s leading out of the artifacts is still there: %v", gone, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(exec.Artifacts, "logs", "inner")); err != nil || string(got) != "hi\n" {
		t.Errorf("symlink inside the artifacts: %q %v", got, err)
	}
}

// TestProcessesThatLeftTheirGroupDieWithTheRun: a task process that made
// itself a new session (out of reach of the group kill) is killed when
// the run ends. Unsandboxed, as the pid it checks is the host's
// (sandboxed: TestSandboxedDaemonDiesWithItsProcess).
func TestProcessesThatLeftTheirGroupDieWithTheRun(t *testing.T) {
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Sandbox = "off" })
	pidFile := filepath.Join(t.TempDir(), "pid")
	f := task(t, `name: daemon
actions:
  - shell:
      - shell: sh
        script: 'setsid sh -c ''echo $$ > "$1"; exec sleep 60'' x "$1" >/dev/null 2>&1 & while [ ! -s "$1" ]; do sleep 0.05; done'
        args: ["${pidfile}"]
`, nil)
	ex, err := r.Run(context.Background(), contract.RunnerInput{Item: "a", ItemType: "koji_build", Formula: f}, map[string]string{"pidfile": pidFile})
	if err != nil || ex.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%v %+v", err, ex)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(raw))
	for i := 0; i < 50; i++ {
		if st, err := os.ReadFile("/proc/" + pid + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(atoi(pid), syscall.SIGKILL)
	t.Fatalf("process %s that left its group outlived the run", pid)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func TestExecutionJSONRoundTrips(t *testing.T) {
	r, _ := testRunner(t, nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Formula: exampleFormula(t)}, nil)
	raw, err := os.ReadFile(filepath.Join(exec.Artifacts, "taskotron", "execution.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back contract.Execution
	if err := json.Unmarshal(raw, &back); err != nil || back.UUID != exec.UUID || len(back.Results) != 1 {
		t.Fatalf("%v %+v", err, back)
	}
}

func TestBadInputRefused(t *testing.T) {
	r, _ := testRunner(t, nil)
	for want, in := range map[string]contract.RunnerInput{
		`uuid "../../etc"`:         {Item: "a", ItemType: "koji_build", UUID: "../../etc"},
		`arch "x86_64 i686"`:       {Item: "a", ItemType: "koji_build", Arch: "x86_64 i686"},
		`item type "koji build"`:   {Item: "a", ItemType: "koji build"},
		"item contains a NUL byte": {Item: "a\x00b", ItemType: "koji_build"},
		"item is 5000 bytes long":  {Item: strings.Repeat("a", 5000), ItemType: "koji_build"},
	} {
		in.Formula = exampleFormula(t)
		exec, err := r.Run(context.Background(), in, nil)
		if err != nil || exec.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(exec.Status, want) || len(exec.Results) != 1 || exec.Results[0].Outcome != contract.Crashed {
			t.Errorf("want %q: %v %+v", want, err, exec)
		}
	}
}

// BenchmarkRunExampleTask is one run of tasks/nvr-format (three actions,
// one process), the cost `taskotron up` pays per job on top of checkout.
func BenchmarkRunExampleTask(b *testing.B) {
	cfg := config.Default()
	dir := b.TempDir()
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	r := New(Options{Config: cfg})
	formula, _ := filepath.Abs("../tasks/nvr-format/runtask.yml")
	for b.Loop() {
		exec, err := r.Run(context.Background(), contract.RunnerInput{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", UUID: "bench", Formula: formula}, nil)
		if err != nil || exec.ExitCode != 0 {
			b.Fatalf("%v %+v", err, exec)
		}
	}
}

func TestBodhiCommentsTravelInTheExecution(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, `name: commented
actions:
  - bodhi_comment:
      results: "results: [{item: FEDORA-2024-0123abcdef, type: bodhi_update, outcome: FAILED}]"
`, nil)
	exec, _ := r.Run(context.Background(), contract.RunnerInput{Item: "FEDORA-2024-0123abcdef", ItemType: "bodhi_update", Formula: f}, nil)
	if exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%+v", exec)
	}
	raw, _ := json.Marshal(exec)
	var back struct {
		Comments []contract.BodhiComment `json:"bodhi_comments"`
	}
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Comments) != 1 || back.Comments[0].Update != "FEDORA-2024-0123abcdef" || !strings.Contains(back.Comments[0].Text, "commented test FAILED") {
		t.Fatalf("%v %s", err, raw)
	}
}

// TestLeftoversOfAnEarlierAttemptAreKilled: processes an earlier attempt of
// the same execution left behind (its worker was SIGKILLed, so only the
// direct children died) are killed before the job runs again, including
// group members that scrubbed their environment. (A run scans /proc for
// them only where an earlier attempt left its folders.)
func TestLeftoversOfAnEarlierAttemptAreKilled(t *testing.T) {
	r, _ := testRunner(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	// What an earlier attempt's task left: a process with the run's
	// environment and, in its group, one without it.
	left := exec.Command("sh", "-c", `env -i sleep 60 & echo $! > "$0"; exec sleep 60`, pidFile)
	left.Env = []string{"PATH=" + os.Getenv("PATH"), "TASKOTRON_UUID=again-1"}
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-left.Process.Pid, syscall.SIGKILL) })
	exited := make(chan struct{})
	go func() { left.Wait(); close(exited) }()
	var scrubbed string
	for i := 0; i < 100 && scrubbed == ""; i++ {
		raw, _ := os.ReadFile(pidFile)
		scrubbed = strings.TrimSpace(string(raw))
		time.Sleep(20 * time.Millisecond)
	}
	// A process of another execution is left alone.
	other := exec.Command("sleep", "60")
	other.Env = []string{"TASKOTRON_UUID=again-10"}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	// The earlier attempt made its artifacts folder before its first
	// process, as every run does.
	if err := os.MkdirAll(filepath.Join(r.artifactsRoot(), "again-1", LogDir), 0o755); err != nil {
		t.Fatal(err)
	}

	f := task(t, "name: again\nactions:\n  - shell: [[true]]\n", nil)
	ex, err := r.Run(context.Background(), contract.RunnerInput{UUID: "again-1", Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if err != nil || ex.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%v %+v", err, ex)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the earlier attempt's process is still running")
	}
	if st, err := os.ReadFile("/proc/" + scrubbed + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Fatalf("its group member %s without TASKOTRON_UUID is still running", scrubbed)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("another execution's process was killed: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(ex.Artifacts, "taskotron", "taskotron.log"))
	if !strings.Contains(string(log), "earlier attempt") {
		t.Errorf("the runner log does not say it killed leftovers:\n%s", log)
	}
}

// TestUndefinedVariablesFoundBeforeAnythingRuns: a variable no one defines
// by the time an action uses it fails the run before the first action; an
// export is defined for the actions after it only; shell scripts keep
// their own $1.
func TestUndefinedVariablesFoundBeforeAnythingRuns(t *testing.T) {
	// Unsandboxed: the marker must be where a task could write it.
	r, _ := testRunner(t, func(c *config.Config) { c.Runner.Sandbox = "off" })
	marker := filepath.Join(t.TempDir(), "ran")
	for src, want := range map[string]string{
		"name: t\nactions:\n  - shell: [[touch, " + marker + "]]\n  - name: late\n    dummy: {result: PASS, msg: '${typo}'}\n":                                             `runtask.yml:4: action "late": undefined variable "typo"`,
		"name: t\nactions:\n  - shell: [[touch, " + marker + "]]\n  - name: early\n    dummy: {result: PASS, msg: '${out}'}\n  - dummy: {result: PASS}\n    export: out\n": `runtask.yml:4: action "early": undefined variable "out"`,
	} {
		ex, err := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1", ItemType: "koji_build", Formula: task(t, src, nil)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ex.ExecutionStatus != contract.ExecutionNotOK || !strings.Contains(ex.Status, want) {
			t.Errorf("got %q, want %q", ex.Status, want)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("the first action ran although a later one uses an undefined variable")
		}
	}
	ok := "name: t\nactions:\n  - dummy: {result: PASS, msg: hi}\n    export: out\n  - shell:\n      - {shell: sh, script: 'test \"$1\" = hi', args: ['${out}']}\n  - dummy: {result: PASS, msg: '${out} ${koji_build} ${over}'}\n"
	ex, _ := r.Run(context.Background(), contract.RunnerInput{Item: "x-1-1", ItemType: "koji_build", Formula: task(t, ok, nil)}, map[string]string{"over": "o"})
	if ex.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("a well-formed formula failed: %s", ex.Status)
	}
}

// BenchmarkKillLeftovers is the /proc scan every run makes twice (at its
// start and end); it should stay a small part of a run.
func BenchmarkKillLeftovers(b *testing.B) {
	for b.Loop() {
		killLeftovers("no-such-execution")
	}
}

// TestLastActionIsTheLastStarted: the progress file, written over in place
// action after action, names the last action started, also when its
// record is shorter than the one before.
func TestLastActionIsTheLastStarted(t *testing.T) {
	r, _ := testRunner(t, nil)
	f := task(t, "name: steps\nactions:\n  - name: a first action with a long name\n    dummy: {result: PASS}\n  - name: b\n    dummy: {result: PASS}\n", nil)
	ex, err := r.Run(context.Background(), contract.RunnerInput{UUID: "progress-1", Item: "a", ItemType: "koji_build", Formula: f}, nil)
	if err != nil || ex.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("%v %+v", err, ex)
	}
	if got := r.LastAction("progress-1"); got != "b" {
		t.Fatalf("LastAction = %q, want \"b\"", got)
	}
	ents, err := os.ReadDir(filepath.Join(ex.Artifacts, LogDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// The dummy actions print nothing: no empty action logs are left.
	if strings.Contains(strings.Join(names, " "), ".std") {
		t.Errorf("the run's folder holds empty action logs: %v", names)
	}
}
