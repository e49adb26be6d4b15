package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestExecutionFollowedThroughEveryStateOnRabbitMQ runs the production
// shape as separate processes: the central server (`resultsdb serve`), the
// trigger and two workers on RabbitMQ. The job is queued, runs on worker A,
// which is SIGKILLed mid-run, runs again on worker B, while the central
// server is restarted; the record shows every state, attempt 1 crashed and
// attempt 2 on B finished, and attempt 2's log holds every line in order.
func TestExecutionFollowedThroughEveryStateOnRabbitMQ(t *testing.T) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("exectrack-%d-%x", time.Now().UnixNano(), rand.Uint32())
	exchange, queuePrefix := prefix+"-jobs-exchange", prefix+"-jobs"
	t.Cleanup(func() { deleteJobQueues(exchange, queuePrefix, "x86_64", "noarch") })

	dir := t.TempDir()
	bin := buildTaskotron(t)
	tasks, mirror := filepath.Join(dir, "tasks"), filepath.Join(dir, "mirror")
	os.MkdirAll(filepath.Join(tasks, "chatty"), 0o755)
	os.WriteFile(filepath.Join(tasks, "chatty", "runtask.yml"), []byte(chattyTask), 0o644)
	if err := checkout.Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yml")
	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do:\n    - {tasks: [chatty], arches: [x86_64]}\n"), 0o644)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	central := "http://" + addr
	env := func(data string) []string {
		return append(os.Environ(),
			"TASKOTRON_DATA_DIR="+filepath.Join(dir, data),
			"TASKOTRON_AMQP_URL="+workerAMQPURL(),
			"TASKOTRON_AMQP_JOB_EXCHANGE="+exchange,
			"TASKOTRON_AMQP_JOB_QUEUE="+queuePrefix,
			"TASKOTRON_RESULTSDB_URL="+central+"/api/v2.0",
			"TASKOTRON_EXECDB_URL="+central,
			"TASKOTRON_EXECDB_TOKEN=exec-s3cret",
			"TASKOTRON_RUNNER_MIRROR="+mirror,
			"TASKOTRON_RUNNER_ARTIFACTS_URL="+central+"/artifacts",
			"TASKOTRON_REPORTER_FLUSH_INTERVAL=1s",
		)
	}
	start := func(name string, args ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env(name)
		var logs lockedBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &logs
	}
	serve := func() (*exec.Cmd, *lockedBuffer) {
		return start("central", "resultsdb", "serve", "--listen", addr)
	}
	srv, srvLogs := serve()
	client, err := execdb.NewClient(central, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitUntil(t, "the central server to answer", 30*time.Second, srvLogs, func() bool { _, err := client.Queue(ctx); return err == nil })

	msg, err := os.ReadFile("../../testdata/messages/koji-build-state-change__11.json")
	if err != nil {
		t.Fatal(err)
	}
	msgFile := filepath.Join(dir, "msg.json")
	os.WriteFile(msgFile, msg, 0o644)
	trig, trigLogs := start("trigger", "trigger", "--rules", rules, "--no-dedup", msgFile)
	if err := trig.Wait(); err != nil {
		t.Fatalf("trigger: %v\n%s", err, trigLogs)
	}
	var uuid string
	waitUntil(t, "the job to be recorded as queued", 30*time.Second, trigLogs, func() bool {
		q, err := client.Queue(ctx)
		if err == nil && len(q.Waiting) == 1 && q.Waiting[0].TaskName == "chatty" && q.Waiting[0].State == contract.StateQueued {
			uuid = q.Waiting[0].UUID
			return true
		}
		return false
	})
	started := func(data string) string { return filepath.Join(dir, data, "artifacts", uuid, "started-"+uuid) }
	get := func() execdb.Detail {
		d, err := client.Get(ctx, uuid)
		if err != nil {
			return execdb.Detail{}
		}
		return d
	}

	// Worker A runs it; its log arrives while it runs; A is killed.
	a, aLogs := start("worker-a", "worker", "--arches", "x86_64", "--concurrency", "1")
	waitUntil(t, "attempt 1 to run on worker A", 60*time.Second, aLogs, func() bool {
		d := get()
		return d.State == contract.StateRunning && d.Attempt == 1 && d.Action == "work"
	})
	waitUntil(t, "worker A's log lines to arrive while it runs", 30*time.Second, aLogs, func() bool {
		data, _, err := client.ReadLog(ctx, uuid, 1, "01-work.stdout", 0, 0)
		return err == nil && strings.Contains(string(data), "line 3\n")
	})
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()

	// Worker B runs it again; the central server restarts meanwhile.
	_, bLogs := start("worker-b", "worker", "--arches", "x86_64", "--concurrency", "1")
	waitUntil(t, "attempt 2 to start on worker B", 60*time.Second, bLogs, func() bool { _, err := os.Stat(started("worker-b")); return err == nil })
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	time.Sleep(1500 * time.Millisecond) // B's state changes and log pile up meanwhile
	srv, srvLogs = serve()
	waitUntil(t, "the job to finish on worker B", 90*time.Second, bLogs, func() bool {
		d := get()
		return d.State == contract.StateFinished
	})

	d := get()
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
		data, final, err := client.ReadLog(ctx, uuid, 2, "01-work.stdout", 0, 0)
		log = data
		return err == nil && final && strings.Contains(string(data), "line 60\n")
	})
	var want strings.Builder
	for i := 1; i <= 60; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if !strings.HasPrefix(string(log), want.String()) {
		t.Errorf("attempt 2's log is not every line in order:\n%s", log)
	}
	if _, err := client.Get(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	_ = srvLogs
}
