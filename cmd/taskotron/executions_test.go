package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
)

// chattyTask writes a numbered line every 100 ms for a few seconds, marking
// each attempt's start, so that its log can be followed and checked whole.
const chattyTask = `name: chatty
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'touch "$$0/started-$$1"; i=1; while [ $$i -le 60 ]; do echo "line $$i"; i=$$((i+1)); sleep 0.1; done; printf "TAP version 13\n1..1\nok 1 - chatty\n"', "${artifactsdir}", "${uuid}"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`

// execCluster is the production shape as separate processes: a central
// server (`resultsdb serve`), the trigger and workers on RabbitMQ, each
// with a data folder of its own below dir.
type execCluster struct {
	t       *testing.T
	dir     string
	bin     string
	addr    string
	central string
	// serverEnv is added to the central server's environment (its
	// databases).
	serverEnv []string
	exchange  string
	queue     string
	client    *execdb.Client
	// all has every process's output, for failures.
	all lockedBuffer
}

func newExecCluster(t *testing.T, task, formula string) *execCluster {
	t.Helper()
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("exectrack-%d-%x", time.Now().UnixNano(), rand.Uint32())
	c := &execCluster{t: t, dir: t.TempDir(), bin: buildTaskotron(t), exchange: prefix + "-jobs-exchange", queue: prefix + "-jobs"}
	t.Cleanup(func() { deleteJobQueues(c.exchange, c.queue, "x86_64", "noarch") })
	tasks, mirror := filepath.Join(c.dir, "tasks"), filepath.Join(c.dir, "mirror")
	os.MkdirAll(filepath.Join(tasks, task), 0o755)
	os.WriteFile(filepath.Join(tasks, task, "runtask.yml"), []byte(formula), 0o644)
	if err := checkout.Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.dir, "rules.yml"),
		[]byte("- when: {message_type: KojiBuildPackageCompleted}\n  do:\n    - {tasks: ["+task+"], arches: [x86_64]}\n"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	ln.Close()
	c.central = "http://" + c.addr
	if c.client, err = execdb.NewClient(c.central, "", nil); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *execCluster) env(data string) []string {
	return append(os.Environ(),
		"TASKOTRON_DATA_DIR="+filepath.Join(c.dir, data),
		"TASKOTRON_AMQP_URL="+workerAMQPURL(),
		"TASKOTRON_AMQP_JOB_EXCHANGE="+c.exchange,
		"TASKOTRON_AMQP_JOB_QUEUE="+c.queue,
		"TASKOTRON_RESULTSDB_URL="+c.central+"/api/v2.0",
		"TASKOTRON_EXECDB_URL="+c.central,
		"TASKOTRON_EXECDB_TOKEN=exec-s3cret",
		"TASKOTRON_RUNNER_MIRROR="+filepath.Join(c.dir, "mirror"),
		"TASKOTRON_RUNNER_ARTIFACTS_URL="+c.central+"/artifacts",
		"TASKOTRON_REPORTER_FLUSH_INTERVAL=1s",
	)
}

// start runs a role with the data folder name.
func (c *execCluster) start(name string, env []string, args ...string) (*exec.Cmd, *lockedBuffer) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(c.env(name), env...)
	var logs lockedBuffer
	out := io.MultiWriter(&logs, &c.all)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &logs
}

// serve starts the central server and waits until it answers.
func (c *execCluster) serve() (*exec.Cmd, *lockedBuffer) {
	srv, logs := c.start("central", c.serverEnv, "resultsdb", "serve", "--listen", c.addr)
	waitUntil(c.t, "the central server to answer", 30*time.Second, logs, func() bool { _, err := c.client.Queue(context.Background()); return err == nil })
	return srv, logs
}

// trigger sends one Koji build message through a trigger process and
// returns the uuid of the job it queued, once the central server shows it.
func (c *execCluster) trigger() string {
	t := c.t
	msg, err := os.ReadFile("../../testdata/messages/koji-build-state-change__11.json")
	if err != nil {
		t.Fatal(err)
	}
	msgFile := filepath.Join(c.dir, "msg.json")
	os.WriteFile(msgFile, msg, 0o644)
	trig, logs := c.start("trigger", nil, "trigger", "--rules", filepath.Join(c.dir, "rules.yml"), "--no-dedup", msgFile)
	if err := trig.Wait(); err != nil {
		t.Fatalf("trigger: %v\n%s", err, logs)
	}
	var uuid string
	// Workers that wait for jobs may have it running already.
	waitUntil(t, "the job to be recorded", 30*time.Second, logs, func() bool {
		p, err := c.client.List(context.Background(), nil)
		if err == nil && len(p.Data) == 1 {
			uuid = p.Data[0].UUID
			return true
		}
		return false
	})
	return uuid
}

func (c *execCluster) get(uuid string) execdb.Detail {
	d, err := c.client.Get(context.Background(), uuid)
	if err != nil {
		return execdb.Detail{}
	}
	return d
}

// page fetches one of the central server's pages.
func (c *execCluster) page(path string) string {
	c.t.Helper()
	resp, err := http.Get(c.central + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}

// numbered is "<prefix> 1\n" up to "<prefix> n\n".
func numbered(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

// freshPostgres makes a schema of its own in the PostgreSQL test database,
// dropped when the test ends, and returns a DSN that uses it.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := "postgres://postgres@127.0.0.1:5432/test"
	if u := os.Getenv("RESULTSDB_TEST_POSTGRES"); u != "" {
		dsn = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("PostgreSQL is needed for this test and is not reachable at %s (set RESULTSDB_TEST_POSTGRES): %v", dsn, err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("exectrack_%x", rand.Uint64())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

// TestExecutionFollowedThroughEveryStateOnRabbitMQ runs the production
// shape as separate processes: the central server (`resultsdb serve`), the
// trigger and two workers on RabbitMQ. The job is queued, runs on worker A,
// which is SIGKILLed mid-run, runs again on worker B, while the central
// server is restarted; the record shows every state, attempt 1 crashed and
// attempt 2 on B finished, and attempt 2's log holds every line in order.
func TestExecutionFollowedThroughEveryStateOnRabbitMQ(t *testing.T) {
	c := newExecCluster(t, "chatty", chattyTask)
	srv, _ := c.serve()
	ctx := context.Background()
	uuid := c.trigger()
	if q, err := c.client.Queue(ctx); err != nil || len(q.Waiting) != 1 || q.Waiting[0].UUID != uuid || q.Waiting[0].State != contract.StateQueued {
		t.Fatalf("queue before any worker: %+v %v; want the job waiting", q, err)
	}
	started := func(data string) string { return filepath.Join(c.dir, data, "artifacts", uuid, "started-"+uuid) }

	// Worker A runs it; its log arrives while it runs; A is killed.
	a, aLogs := c.start("worker-a", nil, "worker", "--arches", "x86_64", "--concurrency", "1")
	waitUntil(t, "attempt 1 to run on worker A", 60*time.Second, aLogs, func() bool {
		d := c.get(uuid)
		return d.State == contract.StateRunning && d.Attempt == 1 && d.Action == "work"
	})
	waitUntil(t, "worker A's log lines to arrive while it runs", 30*time.Second, aLogs, func() bool {
		data, _, err := c.client.ReadLog(ctx, uuid, 1, "01-work.stdout", 0, 0)
		return err == nil && strings.Contains(string(data), "line 3\n")
	})
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()

	// Worker B runs it again; the central server restarts meanwhile.
	_, bLogs := c.start("worker-b", nil, "worker", "--arches", "x86_64", "--concurrency", "1")
	waitUntil(t, "attempt 2 to start on worker B", 60*time.Second, bLogs, func() bool { _, err := os.Stat(started("worker-b")); return err == nil })
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	time.Sleep(1500 * time.Millisecond) // B's state changes and log pile up meanwhile
	c.serve()
	waitUntil(t, "the job to finish on worker B", 90*time.Second, bLogs, func() bool {
		return c.get(uuid).State == contract.StateFinished
	})

	d := c.get(uuid)
	if d.Attempt != 2 || d.Outcome != "PASSED" || d.Results != 1 || !strings.Contains(d.Worker, ":") {
		t.Errorf("finished record: %+v", d.Execution)
	}
	if len(d.Attempts) != 2 || d.Attempts[0].State != contract.StateCrashed || d.Attempts[1].State != contract.StateFinished ||
		d.Attempts[0].Worker == d.Attempts[1].Worker {
		t.Fatalf("attempts: %+v; want 1 crashed on A, 2 finished on B", d.Attempts)
	}
	var states []string
	for _, e := range d.Timeline {
		states = append(states, fmt.Sprintf("%s/%d", e.State, e.Attempt))
	}
	timeline := strings.Join(states, " ")
	for _, want := range []string{"queued/0", "running/1", "running/2", "finished/2"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline %q lacks %s", timeline, want)
		}
	}
	// Attempt 2's output, whole and in order, across the server's restart.
	var log []byte
	waitUntil(t, "attempt 2's log to be complete", 30*time.Second, bLogs, func() bool {
		data, final, err := c.client.ReadLog(ctx, uuid, 2, "01-work.stdout", 0, 0)
		log = data
		return err == nil && final && strings.Contains(string(data), "line 60\n")
	})
	if !strings.HasPrefix(string(log), numbered("line", 60)) {
		t.Errorf("attempt 2's log is not every line in order:\n%s", log)
	}
}

// TestKilledWorkerShowsItsAttemptCrashedAndTheNextOnTheOtherWorker: two
// worker processes consume from RabbitMQ and report to a central server on
// PostgreSQL. The one that took the job is SIGKILLed mid-run; the other runs
// it again. The execution API and the execution page show attempt 1 as
// crashed on the killed worker and attempt 2 finished on the other one, and
// the queue showed the run with its worker while it went on.
func TestKilledWorkerShowsItsAttemptCrashedAndTheNextOnTheOtherWorker(t *testing.T) {
	c := newExecCluster(t, "chatty", chattyTask)
	pg := freshPostgres(t)
	c.serverEnv = []string{"TASKOTRON_RESULTSDB_DB=" + pg, "TASKOTRON_EXECDB_DB=" + pg}
	c.serve()
	ctx := context.Background()
	host, _ := os.Hostname()
	workers := map[string]*exec.Cmd{}
	for _, name := range []string{"worker-a", "worker-b"} {
		w, _ := c.start(name, nil, "worker", "--arches", "x86_64", "--concurrency", "1")
		workers[fmt.Sprintf("%s:%d", host, w.Process.Pid)] = w
	}
	logs := &c.all
	uuid := c.trigger()

	var first string
	waitUntil(t, "attempt 1 to run", 60*time.Second, &c.all, func() bool {
		d := c.get(uuid)
		first = d.Worker
		return d.State == contract.StateRunning && d.Attempt == 1 && d.Action == "work"
	})
	victim := workers[first]
	if victim == nil {
		t.Fatalf("attempt 1 runs on %q, none of the workers %v", first, workers)
	}
	q, err := c.client.Queue(ctx)
	if err != nil || len(q.Running) != 1 || q.Running[0].UUID != uuid || q.Running[0].Worker != first || q.Running[0].Action != "work" {
		t.Errorf("queue while it runs: %+v %v; want it running on %s in action work", q.Running, err, first)
	}
	if page := c.page("/queue"); !strings.Contains(page, first) || !strings.Contains(page, "chatty") {
		t.Errorf("the queue page does not show the run on %s:\n%s", first, page)
	}
	waitUntil(t, "attempt 1's log lines to arrive", 30*time.Second, &c.all, func() bool {
		data, _, err := c.client.ReadLog(ctx, uuid, 1, "01-work.stdout", 0, 0)
		return err == nil && strings.Contains(string(data), "line 3\n")
	})
	// `taskotron logs -f` follows the run from here, across the kill.
	follow := exec.Command(c.bin, "logs", "-f", "--name", "01-work.stdout", uuid)
	follow.Env = c.env("cli")
	var followOut, followErr lockedBuffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	waitUntil(t, "logs -f to print attempt 1's lines", 30*time.Second, &followErr, func() bool { return strings.Contains(followOut.String(), "line 3\n") })
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	var other string
	for name := range workers {
		if name != first {
			other = name
		}
	}

	waitUntil(t, "the job to finish on the other worker", 120*time.Second, logs, func() bool {
		return c.get(uuid).State == contract.StateFinished
	})
	d := c.get(uuid)
	if d.Attempt != 2 || d.Worker != other || d.Outcome != "PASSED" || d.Results != 1 {
		t.Errorf("finished record: %+v; want attempt 2 PASSED on %s", d.Execution, other)
	}
	if len(d.Attempts) != 2 {
		t.Fatalf("attempts: %+v; want 2", d.Attempts)
	}
	a1, a2 := d.Attempts[0], d.Attempts[1]
	if a1.Attempt != 1 || a1.State != contract.StateCrashed || a1.Worker != first || a1.Ended == nil || !strings.Contains(a1.Reason, "stopped answering") {
		t.Errorf("attempt 1: %+v; want crashed on %s, its worker having stopped answering", a1, first)
	}
	if a2.Attempt != 2 || a2.State != contract.StateFinished || a2.Worker != other || a2.Outcome != "PASSED" {
		t.Errorf("attempt 2: %+v; want finished PASSED on %s", a2, other)
	}
	// The log of each attempt stays apart: attempt 1's stops where it was
	// killed, attempt 2's is whole.
	data, _, err := c.client.ReadLog(ctx, uuid, 1, "01-work.stdout", 0, 0)
	if err != nil || !strings.HasPrefix(string(data), "line 1\nline 2\nline 3\n") || strings.Contains(string(data), "line 60\n") {
		t.Errorf("attempt 1's log: %q %v", data, err)
	}
	waitUntil(t, "attempt 2's log to be complete", 30*time.Second, logs, func() bool {
		data, final, err := c.client.ReadLog(ctx, uuid, 2, "01-work.stdout", 0, 0)
		return err == nil && final && strings.HasPrefix(string(data), numbered("line", 60))
	})

	// logs -f printed attempt 1 up to the kill, then attempt 2 whole, and
	// ended with the run.
	followed := make(chan error, 1)
	go func() { followed <- follow.Wait() }()
	select {
	case err := <-followed:
		out := followOut.String()
		i := strings.Index(out, "line 1\n")
		j := strings.LastIndex(out, "line 1\n")
		if err != nil || i != 0 || j <= i || !strings.HasPrefix(out[j:], numbered("line", 60)) || !strings.Contains(followErr.String(), "--- attempt 2 on "+other) {
			t.Errorf("logs -f: %v\nstdout:\n%s\nstderr:\n%s", err, out, followErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("logs -f did not end with the run; it printed:\n%s\n%s", followOut.String(), followErr.String())
	}

	// The page says the same: both attempts, their states and workers.
	page := c.page("/executions/" + uuid)
	for _, want := range []string{first, other, `<span class="st crashed">crashed</span>`, `<span class="st finished">finished</span>`, "stopped answering", "PASSED"} {
		if !strings.Contains(page, want) {
			t.Errorf("the execution page lacks %q", want)
		}
	}
	attempts := page[strings.Index(page, "<h2>Attempts</h2>"):strings.Index(page, "<h2>Timeline</h2>")]
	if i1, i2 := strings.Index(attempts, first), strings.Index(attempts, other); i1 < 0 || i2 < 0 || i1 > i2 {
		t.Errorf("the attempts table does not list attempt 1 on %s before attempt 2 on %s:\n%s", first, other, attempts)
	}
	// The link results carry (reporter.execdb_url) leads to this page.
	if page := c.page("/jobs/" + uuid); !strings.Contains(page, uuid) || !strings.Contains(page, "<h2>Attempts</h2>") {
		t.Errorf("/jobs/%s is not the execution's page", uuid)
	}
}

// twoStepTask writes its first lines, waits for the test to let it go on
// (while the central server is down), writes the rest of them and a second
// action's lines, and reports: every state change after the first lines
// and most of the log are made while nobody takes them.
const twoStepTask = `name: twostep
namespace: scratch
actions:
  - name: first
    shell:
      - [sh, -c, 'i=1; while [ $$i -le 30 ]; do echo "first $$i"; i=$$((i+1)); sleep 0.02; done; while [ ! -e "$$0/go-on" ]; do sleep 0.05; done; while [ $$i -le 60 ]; do echo "first $$i"; i=$$((i+1)); sleep 0.02; done; echo artifact > "$$0/made-by-the-task.txt"', "${artifactsdir}"]
  - name: second
    shell:
      - [sh, -c, 'i=1; while [ $$i -le 40 ]; do echo "second $$i"; i=$$((i+1)); done; printf "TAP version 13\n1..1\nok 1 - twostep\n"']
    export: out
  - name: report
    resultsdb:
      results: ${out}
`

// TestCentralServerRestartedMidRunLosesNoLogLineNorStateChange: the central
// server is SIGKILLed while a worker process runs a job; the job goes on
// through its actions and ends while the server is away (its state changes
// wait in the worker's outbox, its log on disk, its results in the
// reporter's spool). The server started again gets all of it, late and in
// order: every state change of the run, every log line, the artifacts and
// the result.
func TestCentralServerRestartedMidRunLosesNoLogLineNorStateChange(t *testing.T) {
	c := newExecCluster(t, "twostep", twoStepTask)
	srv, _ := c.serve()
	ctx := context.Background()
	uuid := c.trigger()
	_, wLogs := c.start("worker", nil, "worker", "--arches", "x86_64", "--concurrency", "1")
	waitUntil(t, "the first 30 lines to arrive while it runs", 60*time.Second, wLogs, func() bool {
		data, _, err := c.client.ReadLog(ctx, uuid, 1, "01-first.stdout", 0, 0)
		return err == nil && strings.Contains(string(data), "first 30\n")
	})
	if d := c.get(uuid); d.State != contract.StateRunning || d.Action != "first" {
		t.Fatalf("before the restart: %+v; want running in action first", d.Execution)
	}
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()

	// The run goes on and ends while nobody listens.
	os.WriteFile(filepath.Join(c.dir, "worker", "artifacts", uuid, "go-on"), nil, 0o644)
	outbox := filepath.Join(c.dir, "worker", "outbox", "worker-0", "00000001.jsonl")
	waitUntil(t, "the worker to keep the end of the run in its outbox", 60*time.Second, wLogs, func() bool {
		raw, _ := os.ReadFile(outbox)
		return strings.Contains(string(raw), `"state":"finished"`)
	})
	if !strings.Contains(wLogs.String(), "state changes wait in the outbox") {
		t.Errorf("the worker did not say its state changes wait:\n%s", wLogs)
	}

	c.serve()
	waitUntil(t, "the end of the run to arrive", 60*time.Second, &c.all, func() bool {
		return c.get(uuid).State == contract.StateFinished
	})
	d := c.get(uuid)
	if d.Attempt != 1 || d.ExecutionStatus != "OK" || d.Outcome != "PASSED" || d.Results != 1 || len(d.Attempts) != 1 || d.Attempts[0].State != contract.StateFinished {
		t.Errorf("finished record: %+v, attempts %+v", d.Execution, d.Attempts)
	}
	// Every state change, in the order the worker made them.
	var got []string
	for _, e := range d.Timeline {
		if e.Attempt == 1 {
			got = append(got, e.State+":"+e.Action)
		}
	}
	want := "running: running:first running:second running:report finished:"
	if strings.Join(got, " ") != want {
		t.Errorf("attempt 1's timeline: %q, want %q", strings.Join(got, " "), want)
	}
	for i := 1; i < len(d.Timeline); i++ {
		if d.Timeline[i].Time.Before(d.Timeline[i-1].Time) {
			t.Errorf("timeline out of order at %d: %+v", i, d.Timeline)
		}
	}
	// Every log line, in order, and the logs complete.
	for name, want := range map[string]string{"01-first.stdout": numbered("first", 60), "02-second.stdout": numbered("second", 40)} {
		var data []byte
		waitUntil(t, name+" to be complete", 30*time.Second, wLogs, func() bool {
			var final bool
			var err error
			data, final, err = c.client.ReadLog(ctx, uuid, 1, name, 0, 0)
			return err == nil && final && len(data) >= len(want)
		})
		if !strings.HasPrefix(string(data), want) {
			t.Errorf("%s is not every line in order:\n%s", name, data)
		}
	}
	waitUntil(t, "the runner's log to be complete", 30*time.Second, wLogs, func() bool {
		data, final, err := c.client.ReadLog(ctx, uuid, 1, "taskotron.log", 0, 0)
		return err == nil && final && strings.Contains(string(data), "report")
	})
	// The CLI lists it and prints its logs.
	cli := func(args ...string) string {
		cmd := exec.Command(c.bin, args...)
		cmd.Env = c.env("cli")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("taskotron %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("executions", "--state", "finished", "--task", "twostep"); !strings.Contains(out, uuid) || !strings.Contains(out, "PASSED") {
		t.Errorf("taskotron executions --state finished:\n%s", out)
	}
	if out := cli("executions", "--state", "running"); strings.Contains(out, uuid) {
		t.Errorf("taskotron executions --state running lists the finished one:\n%s", out)
	}
	bad := exec.Command(c.bin, "executions", "--state", "lost")
	bad.Env = c.env("cli")
	if out, err := bad.CombinedOutput(); bad.ProcessState.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), `--state "lost"`) {
		t.Errorf("executions --state lost: %v, want exit 2 and one line naming it:\n%s", err, out)
	}
	if out := cli("logs", "--name", "02-second.stdout", uuid); !strings.HasPrefix(out, numbered("second", 40)) {
		t.Errorf("taskotron logs --name 02-second.stdout:\n%s", out)
	}
	// The artifacts, uploaded once the server was back, and the result.
	waitUntil(t, "the artifacts to be uploaded", 60*time.Second, &c.all, func() bool {
		resp, err := http.Get(c.central + "/artifacts/" + uuid + "/made-by-the-task.txt")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(body) == "artifact\n"
	})
	waitUntil(t, "the result to be stored", 30*time.Second, wLogs, func() bool {
		return strings.Contains(c.page("/api/v2.0/results?groups="+uuid), "twostep")
	})
}
