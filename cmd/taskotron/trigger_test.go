package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/trigger"
)

// The fixture messages: unchanged copies of corpus messages, kept in the repository.
const fixtureMessages = "../../fixtures/messages"

// queuedJobs takes every job waiting in the on-disk queue of data_dir.
func queuedJobs(t *testing.T, dataDir string) []contract.Job {
	t.Helper()
	q, err := bus.OpenDiskQueue(filepath.Join(dataDir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []contract.Job
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		d, err := q.Next(ctx)
		cancel()
		if err != nil {
			return jobs
		}
		jobs = append(jobs, d.Job)
		d.Ack()
	}
}

func readJSONLines[T any](t *testing.T, path string) []T {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, v)
	}
	return out
}

func hasJob(jobs []contract.Job, task, arch, item string) bool {
	for _, j := range jobs {
		if j.TaskName == task && j.Arch == arch && j.Item == item {
			return true
		}
	}
	return false
}

// An operator runs the trigger over the fixture messages and a file with two broken
// lines, runs it again (nothing new: the state remembers), then replays the
// job log onto the queue.
func TestTriggerFilesThenReplayJobs(t *testing.T) {
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data}
	broken := filepath.Join(t.TempDir(), "broken.jsonl")
	os.WriteFile(broken, []byte("{\"topic\": 5}\n\nnot json\n"), 0o644)

	code, out, stderr := runCLI(t, env, "trigger", "--summary", fixtureMessages, broken)
	if code != 0 {
		t.Fatalf("trigger: exit %d: %s", code, stderr)
	}
	var outcomes []trigger.MessageOutcome
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var o trigger.MessageOutcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("--summary line %q: %v", line, err)
		}
		outcomes = append(outcomes, o)
	}
	files, _ := filepath.Glob(filepath.Join(fixtureMessages, "*.json"))
	if len(outcomes) != len(files)+2 {
		t.Fatalf("%d outcomes for %d fixtureMessages files and 2 broken lines", len(outcomes), len(files))
	}
	count := map[string]int{}
	jobs := 0
	for _, o := range outcomes {
		count[o.Outcome]++
		jobs += len(o.Jobs)
	}
	if count[trigger.OutcomeRejected] != 2 || count[trigger.OutcomeIgnored] == 0 || jobs == 0 {
		t.Fatalf("outcomes %v, %d jobs: want the 2 broken lines rejected, some ignored, some jobs", count, jobs)
	}

	logged := readJSONLines[contract.Job](t, filepath.Join(data, "jobs.jsonl"))
	queued := queuedJobs(t, data)
	if len(logged) != jobs || len(queued) != jobs {
		t.Fatalf("%d jobs in the summary, %d in the job log, %d on the queue", jobs, len(logged), len(queued))
	}
	if !hasJob(queued, "rpmlint", "x86_64", "chromium-80.0.3987.132-1.fc33") || !hasJob(queued, "python-versions", "noarch", "chromium-80.0.3987.132-1.fc33") {
		t.Errorf("the built-in rules' rpmlint/x86_64 and python-versions/noarch jobs for a fixtureMessages build are not queued: %+v", queued)
	}

	dead := readJSONLines[bus.DeadLetter](t, config.Config{DataDir: data}.DeadLetterFile())
	sort.Slice(dead, func(i, j int) bool { return dead[i].Origin < dead[j].Origin })
	if len(dead) != 2 || dead[0].Origin != broken+":1" || dead[1].Origin != broken+":3" || dead[1].Raw != "not json" {
		t.Fatalf("dead letters: %+v", dead)
	}

	// Run again: the same messages make no second job.
	code, out, stderr = runCLI(t, env, "trigger", "--summary", fixtureMessages)
	if code != 0 {
		t.Fatalf("second trigger run: exit %d: %s", code, stderr)
	}
	if strings.Contains(out, `"jobs":[{`) || len(queuedJobs(t, data)) != 0 {
		t.Fatalf("second run over the same messages queued jobs again:\n%s", out)
	}

	// Replay the job log: every job queued again, with a new uuid, saying
	// which one it replays.
	logPath := filepath.Join(data, "jobs.jsonl")
	code, out, _ = runCLI(t, env, "replay", "jobs", "--dry-run", logPath)
	if code != 0 || strings.Count(out, "\n") != len(logged) || len(queuedJobs(t, data)) != 0 {
		t.Fatalf("replay --dry-run: exit %d, %d lines for %d jobs, or it queued something:\n%s", code, strings.Count(out, "\n"), len(logged), out)
	}
	code, out, stderr = runCLI(t, env, "replay", "jobs", logPath)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d jobs queued again", len(logged))) {
		t.Fatalf("replay jobs: exit %d: %s %s", code, out, stderr)
	}
	replayed := queuedJobs(t, data)
	if len(replayed) != len(logged) {
		t.Fatalf("%d jobs on the queue after replaying %d", len(replayed), len(logged))
	}
	orig := map[string]contract.Job{}
	for _, j := range logged {
		orig[j.UUID] = j
	}
	for _, j := range replayed {
		of, _ := j.Extra["replay_of"].(string)
		o, ok := orig[of]
		if !ok || j.UUID == of || o.TaskName != j.TaskName || o.Item != j.Item || o.Arch != j.Arch {
			t.Fatalf("replayed job %+v does not match a logged job (replay_of %q)", j, of)
		}
	}
}

func TestExplainPrintsDataRulesAndJobs(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	os.WriteFile(rules, []byte(`- when: {message_type: KojiBuildPackageCompleted, name: {$in: ${critpath_pkgs}}}
  do: [{tasks: [abicheck], match_host_arch: true}]
- when: {message_type: KojiTagChanged}
  do: [{tasks: [rpmdeplint]}]
`), 0o644)
	critpath := filepath.Join(dir, "critpath")
	os.WriteFile(critpath, []byte("# critical path\nchromium\nkernel\n"), 0o644)
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir()}

	code, out, stderr := runCLI(t, env, "explain", "--rules", rules, "--critpath", critpath, "--arches", "x86_64,aarch64",
		filepath.Join(fixtureMessages, "koji-build-state-change__11.json"))
	if code != 0 {
		t.Fatalf("explain: exit %d: %s", code, stderr)
	}
	var ex trigger.Explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("explain does not print JSON: %v\n%s", err, out)
	}
	if ex.Data["message_type"] != "KojiBuildPackageCompleted" || ex.Data["name"] != "chromium" {
		t.Errorf("data: %v", ex.Data)
	}
	if len(ex.Rules) != 2 || !ex.Rules[0].Matched || ex.Rules[1].Matched || ex.Rules[0].Line != 1 || ex.Rules[1].Line != 3 {
		t.Fatalf("rules: %+v", ex.Rules)
	}
	if len(ex.Rules[0].Why) == 0 || len(ex.Rules[1].Why) == 0 || !strings.Contains(strings.Join(ex.Rules[1].Why, " "), "KojiTagChanged") {
		t.Errorf("each rule says why it matched or not: %q / %q", ex.Rules[0].Why, ex.Rules[1].Why)
	}
	if len(ex.Jobs) != 2 || !hasJob(ex.Jobs, "abicheck", "x86_64", "chromium-80.0.3987.132-1.fc33") || !hasJob(ex.Jobs, "abicheck", "aarch64", "chromium-80.0.3987.132-1.fc33") {
		t.Fatalf("jobs: %+v", ex.Jobs)
	}
	if !ex.Jobs[0].MatchHostArch {
		t.Errorf("match_host_arch not on the job: %+v", ex.Jobs[0])
	}

	// A message the trigger skips is explained too, with the reason.
	code, out, _ = runCLI(t, env, "explain", filepath.Join(fixtureMessages, "koji-build-state-change__2.json"))
	ex = trigger.Explanation{}
	if code != 0 || json.Unmarshal([]byte(out), &ex) != nil || !strings.Contains(ex.Ignored, "not COMPLETE") || len(ex.Jobs) != 0 {
		t.Fatalf("ignored message: exit %d: %s", code, out)
	}

	// And from stdin.
	msg, _ := os.ReadFile(filepath.Join(fixtureMessages, "koji-tag__3.json"))
	var stdout, errb bytes.Buffer
	code = run(t.Context(), []string{"explain", "-"}, bytes.NewReader(msg), &stdout, &errb, env)
	ex = trigger.Explanation{}
	if code != 0 || json.Unmarshal(stdout.Bytes(), &ex) != nil || ex.Data["tag"] != "f31-updates-pending" {
		t.Fatalf("explain -: exit %d: %s %s", code, stdout.String(), errb.String())
	}
}

// Wrong input to trigger, replay and explain gets one line naming the file
// (and line), exit 1; wrong usage exit 2.
func TestTriggerReplayExplainErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	badOp := write("bad-op.yml", "- when: {message_type: KojiTagChanged}\n  do: [{tasks: [a]}]\n- when: {tag: {$regexx: x}}\n  do: [{tasks: [b]}]\n")
	badYAML := write("bad-yaml.yml", "- when: {message_type: X}\n  do:\n    - {tasks: [a\n")
	badCrit := write("critpath", "glibc\ntwo names\n")
	notObject := write("not-object.json", "[1, 2]")
	notJSON := write("not-json.json", "{\"topic\": ")
	badLog := write("jobs.jsonl", "{\"item\": \"x-1-1\", \"item_type\": \"koji_build\", \"taskname\": \"t\", \"arch\": \"x86_64\"}\n{\"item\": \"x\"}\n")
	msg := filepath.Join(fixtureMessages, "koji-tag__3.json")
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir()}

	cases := []struct {
		name string
		code int
		args []string
		want []string
	}{
		{"rules: unknown operator", 1, []string{"explain", "--rules", badOp, msg}, []string{"bad-op.yml:3", "$regexx"}},
		{"rules: broken YAML", 1, []string{"explain", "--rules", badYAML, msg}, []string{"bad-yaml.yml:3:"}},
		{"rules: missing file", 1, []string{"trigger", "--rules", filepath.Join(dir, "none.yml"), msg}, []string{"none.yml"}},
		{"trigger: bad rules", 1, []string{"trigger", "--rules", badOp, msg}, []string{"bad-op.yml:3"}},
		{"critpath: two names on a line", 1, []string{"explain", "--critpath", badCrit, msg}, []string{"critpath:2"}},
		{"message: not an object", 1, []string{"explain", notObject}, []string{"not-object.json"}},
		{"message: not JSON", 1, []string{"explain", notJSON}, []string{"not-json.json"}},
		{"message: missing", 1, []string{"explain", filepath.Join(dir, "gone.json")}, []string{"gone.json"}},
		{"trigger: missing message file", 1, []string{"trigger", filepath.Join(dir, "gone.jsonl")}, []string{"gone.jsonl"}},
		{"job log: bad line", 1, []string{"replay", "jobs", badLog}, []string{"jobs.jsonl:2"}},
		{"job log: missing", 1, []string{"replay", "jobs", filepath.Join(dir, "nolog.jsonl")}, []string{"nolog.jsonl"}},
		{"replay messages: bad message", 1, []string{"replay", "messages", notJSON}, []string{"not-json.json"}},
		{"explain: no message", 2, []string{"explain"}, []string{"usage"}},
		{"trigger: bad --workers", 2, []string{"trigger", "--workers", "-1"}, []string{"--workers"}},
		{"replay: unknown kind", 2, []string{"replay", "everything"}, []string{"everything"}},
		{"replay messages: no broker", 2, []string{"replay", "messages", msg}, []string{"amqp.url"}},
	}
	for _, c := range cases {
		cenv := env
		if c.name == "replay messages: bad message" {
			cenv = append(cenv, "TASKOTRON_AMQP_URL=amqp://guest:guest@127.0.0.1:1/")
		}
		code, _, stderr := runCLI(t, cenv, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", c.name, code, c.code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not mention %q", c.name, stderr, w)
			}
		}
		if c.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: more than one line: %q", c.name, stderr)
		}
	}
}

// lockedBuffer is a log destination read while the command runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitLog(t *testing.T, log *lockedBuffer, what string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(log.String(), what); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the trigger did not log %q:\n%s", what, log.String())
		}
	}
}

// The trigger on RabbitMQ: rules reloaded on SIGHUP (a bad file keeps the
// old rules), fixture messages published with `replay messages`, jobs on
// the per-arch job queues, exit 0 when stopped.
func TestTriggerAMQPReloadAndReplayMessages(t *testing.T) {
	url := "amqp://guest:guest@127.0.0.1:5672/"
	if u := os.Getenv("TASKOTRON_TEST_AMQP"); u != "" {
		url = u
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", url, err)
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("cmdtest-%d-%x", time.Now().UnixNano(), rand.Uint32())
	// An exchange of its own: the fixtures' topics reach no one else's queue.
	env := []string{
		"TASKOTRON_DATA_DIR=" + t.TempDir(),
		"TASKOTRON_AMQP_URL=" + url,
		"TASKOTRON_AMQP_EXCHANGE=" + name + ".bus",
		"TASKOTRON_AMQP_QUEUE=" + name + "-trigger",
		"TASKOTRON_AMQP_JOB_EXCHANGE=" + name + ".jobs",
		"TASKOTRON_AMQP_JOB_QUEUE=" + name + "-jobs",
		"TASKOTRON_TRIGGER_ARCHES=x86_64,aarch64",
	}
	t.Cleanup(func() {
		// Its own connection: the test's is closed by now.
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Errorf("removing the test's queues: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("removing the test's queues: %v", err)
			return
		}
		for _, q := range []string{"-trigger", "-trigger.deadletter", "-jobs.x86_64", "-jobs.x86_64.host", "-jobs.aarch64", "-jobs.noarch"} {
			if _, err := ch.QueueDelete(name+q, false, false, false); err != nil {
				t.Errorf("removing queue %s: %v", name+q, err)
				return
			}
		}
		ch.ExchangeDelete(name+".bus", false, false)
		ch.ExchangeDelete(name+".jobs", false, false)
	})
	rules := filepath.Join(t.TempDir(), "rules.yml")
	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [first]}]\n"), 0o644)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	log := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"trigger", "--rules", rules}, strings.NewReader(""), &stdout, log, env)
	}()
	waitLog(t, log, "trigger started")

	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [second]}]\n- when: {x: {$bad: 1}}\n  do: []\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, log, "rules not reloaded")
	if !strings.Contains(log.String(), "rules.yml:3") {
		t.Errorf("the reload error does not name the line:\n%s", log.String())
	}
	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [third], arches: [x86_64]}]\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, log, "rules reloaded")

	// Two completed builds, one failed build, one of them twice, and a
	// build message without its state.
	msgs := []string{"koji-build-state-change__11.json", "koji-build-state-change__6.json", "koji-build-state-change__4.json", "koji-build-state-change__11.json"}
	var paths []string
	for _, m := range msgs {
		paths = append(paths, filepath.Join(fixtureMessages, m))
	}
	malformed := filepath.Join(t.TempDir(), "malformed.json")
	os.WriteFile(malformed, []byte(`{"id": "no-state", "topic": "org.fedoraproject.prod.buildsys.build.state.change", "body": {"name": "x"}}`), 0o644)
	paths = append(paths, malformed)
	code, out, stderr := runCLI(t, env, append([]string{"replay", "messages", "--rate", "50"}, paths...)...)
	if code != 0 || !strings.Contains(out, "5 messages published") || !strings.Contains(stderr, "5/5 messages") {
		t.Fatalf("replay messages: exit %d: %s %s", code, out, stderr)
	}

	var got []contract.Job
	for deadline := time.Now().Add(20 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		d, ok, err := admin.Get(name+"-jobs.x86_64", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var j contract.Job
		json.Unmarshal(d.Body, &j)
		got = append(got, j)
	}
	time.Sleep(500 * time.Millisecond) // a second job for the repeated message would show up now
	for _, q := range []string{"-jobs.x86_64", "-jobs.aarch64"} {
		if st, err := admin.QueueDeclarePassive(name+q, true, false, false, false, amqp.Table{"x-max-priority": int32(9)}); err == nil && st.Messages > 0 {
			t.Errorf("%d more jobs on %s", st.Messages, name+q)
		}
	}
	if len(got) != 2 || !hasJob(got, "third", "x86_64", "chromium-80.0.3987.132-1.fc33") || !hasJob(got, "third", "x86_64", "packit-0.43.0-1.fc36") {
		t.Fatalf("jobs on the x86_64 queue: %+v (want one 'third' job per completed build, from the reloaded rules)", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("trigger stopped with exit %d:\n%s", code, log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("trigger did not stop")
	}
	if !strings.Contains(log.String(), "messages=5") || !strings.Contains(log.String(), "rejected=1") {
		t.Errorf("the stop line does not count the 5 messages, 1 rejected:\n%s", log.String())
	}
	// The malformed one is set aside, as published, with the reason.
	dead, ok, err := admin.Get(name+"-trigger.deadletter", true)
	if err != nil || !ok {
		t.Fatalf("dead-letter queue %s: %v (empty: %v)", name+"-trigger.deadletter", err, !ok)
	}
	if reason := fmt.Sprint(dead.Headers[bus.ReasonHeader]); dead.MessageId != "no-state" || string(dead.Body) != `{"name":"x"}` || !strings.Contains(reason, `"new"`) {
		t.Errorf("dead-lettered %s %s with reason %q", dead.MessageId, dead.Body, reason)
	}
	jobLog := readJSONLines[contract.Job](t, trigger.JobLogPath(configWithDataDir(env)))
	if len(jobLog) != 2 {
		t.Errorf("job log has %d jobs, want 2", len(jobLog))
	}
}

func configWithDataDir(env []string) config.Config {
	cfg := config.Default()
	cfg.DataDir = strings.TrimPrefix(env[0], "TASKOTRON_DATA_DIR=")
	return cfg
}
