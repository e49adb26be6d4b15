package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
)

func workerAMQPURL() string {
	if u := os.Getenv("TASKOTRON_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// buildTaskotron builds the binary for tests that run roles as separate
// processes, as production does.
func buildTaskotron(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "taskotron")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// slowTask marks that it started, leaves a background process that writes
// into the artifacts later, takes a few seconds, then reports.
const slowTask = `name: slow
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'touch "$$0/started"; (sleep 6; touch "$$0/orphan-wrote") >/dev/null 2>&1 & sleep 3; printf "TAP version 13\n1..1\nok 1 - slow\n"', "${artifactsdir}"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`

// TestWorkerKilledMidTaskOnRabbitMQ kills a `taskotron worker` process
// (SIGKILL) while it runs a job taken from the real RabbitMQ; a second
// worker gets the job, runs it, and exactly one set of results is stored.
func TestWorkerKilledMidTaskOnRabbitMQ(t *testing.T) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("workerfault-%d-%x", time.Now().UnixNano(), rand.Uint32())
	exchange, queuePrefix := prefix+"-jobs-exchange", prefix+"-jobs"
	t.Cleanup(func() {
		conn, err := amqp.Dial(workerAMQPURL())
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(queuePrefix+".x86_64", false, false, false)
			ch.QueueDelete(queuePrefix+".x86_64.host", false, false, false)
			ch.ExchangeDelete(exchange, false, false)
		}
	})

	dir := t.TempDir()
	bin := buildTaskotron(t)
	tasks, mirror, data := filepath.Join(dir, "tasks"), filepath.Join(dir, "mirror"), filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(tasks, "slow"), 0o755)
	os.WriteFile(filepath.Join(tasks, "slow", "runtask.yml"), []byte(slowTask), 0o644)
	if err := checkout.Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}

	resultsURL := resultsdbtest.Start(t)
	client, err := reporter.NewResultsDBClient(resultsURL+"/api/v2.0", reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: workerAMQPURL(), Exchange: exchange, Queue: queuePrefix, Arches: []string{"x86_64"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	uuid := prefix + "-job"
	if err := q.Publish(ctx, contract.Job{UUID: uuid, TaskName: "slow", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}

	start := func(name string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "worker", "--arches", "x86_64", "--concurrency", "1")
		cmd.Env = append(os.Environ(),
			"TASKOTRON_DATA_DIR="+data,
			"TASKOTRON_AMQP_URL="+workerAMQPURL(),
			"TASKOTRON_AMQP_JOB_EXCHANGE="+exchange,
			"TASKOTRON_AMQP_JOB_QUEUE="+queuePrefix,
			"TASKOTRON_RESULTSDB_URL="+resultsURL+"/api/v2.0",
			"TASKOTRON_RUNNER_MIRROR="+mirror,
			// Each worker its own spool, as on separate hosts.
			"TASKOTRON_REPORTER_SPOOL="+filepath.Join(dir, "spool-"+name),
		)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &logs
	}
	stored := func() []reporter.StoredResult {
		rs, err := client.GroupResults(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	wait := func(what string, within time.Duration, cond func() bool) {
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	a, aLogs := start("a")
	started := filepath.Join(data, "artifacts", uuid, "started")
	wait("worker A to start the task", 60*time.Second, func() bool { _, err := os.Stat(started); return err == nil })
	killedAt := time.Now()
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	if rs := stored(); len(rs) != 0 {
		t.Fatalf("results stored before the job finished: %+v\n%s", rs, aLogs)
	}

	b, bLogs := start("b")
	defer b.Process.Kill()
	wait("worker B to report the job", 60*time.Second, func() bool { return len(stored()) > 0 })
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker B did not stop cleanly on SIGTERM: %v\n%s", err, bLogs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker B did not stop on SIGTERM\n%s", bLogs)
	}

	// Worker A's task left a grandchild that writes 6 s after the start;
	// the second attempt must have killed it, not let it write into its
	// artifacts.
	time.Sleep(time.Until(killedAt.Add(7500 * time.Millisecond)))
	if _, err := os.Stat(filepath.Join(data, "artifacts", uuid, "orphan-wrote")); err == nil {
		t.Errorf("a process left by the killed worker wrote into the next attempt's artifacts")
	}

	rs := stored()
	if len(rs) != 1 || rs[0].Outcome != "PASSED" || rs[0].Testcase != "scratch.slow" {
		t.Fatalf("stored %d results, want exactly one PASSED scratch.slow: %+v", len(rs), rs)
	}
	if !strings.Contains(bLogs.String(), "attempt=2") {
		t.Errorf("worker B did not see the job as a second attempt:\n%s", bLogs)
	}
	// Nothing is left in the queue: B acked the job.
	conn, err = amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	info, err := ch.QueueDeclarePassive(queuePrefix+".x86_64", true, false, false, false, amqp.Table{"x-max-priority": int32(9)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 0 {
		t.Fatalf("%d jobs left in the queue", info.Messages)
	}
}

// hangTask marks each attempt and then never ends: its worker is killed.
const hangTask = `name: hang
namespace: scratch
actions:
  - name: hang forever
    shell:
      - [sh, -c, 'touch "$$0/started-$$1"; sleep 600', "${artifactsdir}", "${uuid}"]
`

// TestJobWhoseWorkersKeepDyingEndsCrashed: on RabbitMQ, a `taskotron
// worker` process is SIGKILLed during each attempt of a job; after
// runner.max_attempts the next worker does not run it again but stores one
// CRASHED result saying why, and the queue is empty.
func TestJobWhoseWorkersKeepDyingEndsCrashed(t *testing.T) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("workerdies-%d-%x", time.Now().UnixNano(), rand.Uint32())
	exchange, queuePrefix := prefix+"-jobs-exchange", prefix+"-jobs"
	t.Cleanup(func() { deleteJobQueues(exchange, queuePrefix, "x86_64") })

	dir := t.TempDir()
	bin := buildTaskotron(t)
	tasks, mirror, data := filepath.Join(dir, "tasks"), filepath.Join(dir, "mirror"), filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(tasks, "hang"), 0o755)
	os.WriteFile(filepath.Join(tasks, "hang", "runtask.yml"), []byte(hangTask), 0o644)
	if err := checkout.Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	resultsURL := resultsdbtest.Start(t)
	client, err := reporter.NewResultsDBClient(resultsURL+"/api/v2.0", reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: workerAMQPURL(), Exchange: exchange, Queue: queuePrefix, Arches: []string{"x86_64"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	uuid := prefix + "-job"
	if err := q.Publish(ctx, contract.Job{UUID: uuid, TaskName: "hang", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, "worker", "--arches", "x86_64", "--concurrency", "1")
		cmd.Env = append(os.Environ(),
			"TASKOTRON_DATA_DIR="+data,
			"TASKOTRON_AMQP_URL="+workerAMQPURL(),
			"TASKOTRON_AMQP_JOB_EXCHANGE="+exchange,
			"TASKOTRON_AMQP_JOB_QUEUE="+queuePrefix,
			"TASKOTRON_RESULTSDB_URL="+resultsURL+"/api/v2.0",
			"TASKOTRON_RUNNER_MIRROR="+mirror,
			"TASKOTRON_RUNNER_MAX_ATTEMPTS=3",
		)
		var logs lockedBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &logs
	}
	started := filepath.Join(data, "artifacts", uuid, "started-"+uuid)
	for attempt := 1; attempt <= 3; attempt++ {
		os.Remove(started)
		w, logs := start()
		waitUntil(t, fmt.Sprintf("attempt %d to start", attempt), 60*time.Second, logs, func() bool { _, err := os.Stat(started); return err == nil })
		if !strings.Contains(logs.String(), fmt.Sprintf("attempt=%d", attempt)) {
			t.Fatalf("the worker ran attempt %d without saying so:\n%s", attempt, logs)
		}
		w.Process.Signal(syscall.SIGKILL)
		w.Wait()
	}
	os.Remove(started)
	last, logs := start()
	defer func() { last.Process.Signal(syscall.SIGTERM); last.Wait() }()
	var rs []reporter.StoredResult
	waitUntil(t, "the job to end CRASHED", 60*time.Second, logs, func() bool {
		rs, err = client.GroupResults(ctx, uuid)
		return err == nil && len(rs) > 0
	})
	if len(rs) != 1 || rs[0].Outcome != "CRASHED" || !strings.Contains(rs[0].Note, "gave up after 3 attempts") || !strings.Contains(rs[0].Note, `"hang forever"`) {
		t.Fatalf("stored %+v, want one CRASHED result saying it gave up after 3 attempts in action \"hang forever\"", rs)
	}
	if _, err := os.Stat(started); err == nil {
		t.Errorf("the job ran a fourth time")
	}
	conn, err = amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the ack after the report
	info, err := ch.QueueDeclarePassive(queuePrefix+".x86_64", true, false, false, false, amqp.Table{"x-max-priority": int32(9)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 0 {
		t.Fatalf("%d jobs left in the queue", info.Messages)
	}
}

// TestJobOverItsAttemptsKeepsStoredResults: on RabbitMQ, a job comes to a
// `taskotron worker` process over its attempts after an earlier attempt
// (on another host) stored its results and died before its ack: the worker
// acks it and stores no CRASHED result beside them.
func TestJobOverItsAttemptsKeepsStoredResults(t *testing.T) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("workerstored-%d-%x", time.Now().UnixNano(), rand.Uint32())
	exchange, queuePrefix := prefix+"-jobs-exchange", prefix+"-jobs"
	t.Cleanup(func() { deleteJobQueues(exchange, queuePrefix, "x86_64") })
	dir := t.TempDir()
	bin := buildTaskotron(t)
	tasks, mirror := filepath.Join(dir, "tasks"), filepath.Join(dir, "mirror")
	os.MkdirAll(filepath.Join(tasks, "hang"), 0o755)
	os.WriteFile(filepath.Join(tasks, "hang", "runtask.yml"), []byte(hangTask), 0o644)
	if err := checkout.Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	resultsURL := resultsdbtest.Start(t)
	ctx := context.Background()
	uuid := prefix + "-job"
	job := contract.Job{UUID: uuid, TaskName: "hang", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}
	// The earlier attempt's report, from its own spool.
	other, err := reporter.New(reporter.Options{ResultsDBURL: resultsURL + "/api/v2.0", SpoolDir: filepath.Join(dir, "other-spool")})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Report(ctx, contract.Execution{UUID: uuid, ExecutionStatus: contract.ExecutionOK, Item: job.Item, ItemType: job.ItemType, TaskName: "hang",
		Results: []contract.Result{{Item: job.Item, Type: job.ItemType, CheckName: "scratch.hang", Outcome: contract.Passed}}}); err != nil {
		t.Fatal(err)
	}
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: workerAMQPURL(), Exchange: exchange, Queue: queuePrefix, Arches: []string{"x86_64"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	job.Attempt = 3 // this delivery is the fourth
	if err := q.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "worker", "--arches", "x86_64", "--concurrency", "1")
	cmd.Env = append(os.Environ(),
		"TASKOTRON_DATA_DIR="+filepath.Join(dir, "data"),
		"TASKOTRON_AMQP_URL="+workerAMQPURL(),
		"TASKOTRON_AMQP_JOB_EXCHANGE="+exchange,
		"TASKOTRON_AMQP_JOB_QUEUE="+queuePrefix,
		"TASKOTRON_RESULTSDB_URL="+resultsURL+"/api/v2.0",
		"TASKOTRON_RUNNER_MIRROR="+mirror,
		"TASKOTRON_RUNNER_MAX_ATTEMPTS=3",
	)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitUntil(t, "the worker to take the job", 60*time.Second, &logs, func() bool { return strings.Contains(logs.String(), uuid) })
	time.Sleep(time.Second) // a CRASHED post would be made by now
	client, err := reporter.NewResultsDBClient(resultsURL+"/api/v2.0", reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := client.GroupResults(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Outcome != "PASSED" {
		t.Fatalf("stored %+v, want only the earlier attempt's PASSED result\n%s", rs, logs.String())
	}
	if !strings.Contains(logs.String(), "results are stored") {
		t.Fatalf("the worker did not say why it gave no CRASHED result:\n%s", logs.String())
	}
}
