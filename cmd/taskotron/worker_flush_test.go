package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb"
)

// TestWorkerResendsTheSpoolWithoutANewJob: a `taskotron worker` process on
// RabbitMQ runs a job while ResultsDB is down, so its results wait in the
// spool; once ResultsDB is back they are stored within
// reporter.flush_interval, though no other job comes to carry them along.
func TestWorkerResendsTheSpoolWithoutANewJob(t *testing.T) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is not reachable (set TASKOTRON_TEST_AMQP): %v", workerAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("workerflush-%d-%x", time.Now().UnixNano(), rand.Uint32())
	exchange, queuePrefix := prefix+"-jobs-exchange", prefix+"-jobs"
	t.Cleanup(func() { deleteJobQueues(exchange, queuePrefix, "x86_64") })

	dir := t.TempDir()
	bin := buildTaskotron(t)
	mirror, data := filepath.Join(dir, "mirror"), filepath.Join(dir, "data")
	if err := checkout.Seed("../../tasks", mirror); err != nil {
		t.Fatal(err)
	}

	// ResultsDB's address, with nothing listening there yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	api := "http://" + addr + "/api/v2.0"

	cmd := exec.Command(bin, "worker", "--arches", "x86_64", "--concurrency", "1")
	cmd.Env = append(os.Environ(),
		"TASKOTRON_DATA_DIR="+data,
		"TASKOTRON_AMQP_URL="+workerAMQPURL(),
		"TASKOTRON_AMQP_JOB_EXCHANGE="+exchange,
		"TASKOTRON_AMQP_JOB_QUEUE="+queuePrefix,
		"TASKOTRON_RESULTSDB_URL="+api,
		"TASKOTRON_RUNNER_MIRROR="+mirror,
		"TASKOTRON_REPORTER_FLUSH_INTERVAL=1s",
	)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })

	ctx := context.Background()
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: workerAMQPURL(), Exchange: exchange, Queue: queuePrefix, Arches: []string{"x86_64"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	uuid := prefix + "-job"
	if err := q.Publish(ctx, contract.Job{UUID: uuid, TaskName: "nvr-format", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(data, "spool")
	waitUntil(t, "the job's results to wait in the spool", 60*time.Second, &logs, func() bool {
		p, err := reporter.SpoolPending(spool)
		return err == nil && p.Posts > 0
	})

	// ResultsDB comes back; no job follows.
	store, err := resultsdb.Open(ctx, "sqlite:"+filepath.Join(dir, "resultsdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("ResultsDB's address %s was taken meanwhile: %v", addr, err)
	}
	srv := &http.Server{Handler: resultsdb.NewServer(store, resultsdb.Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}})}
	go srv.Serve(ln)
	defer srv.Close()
	back := time.Now()
	client, err := reporter.NewResultsDBClient(api, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the spooled results to reach ResultsDB", 15*time.Second, &logs, func() bool {
		rs, err := client.GroupResults(ctx, uuid)
		return err == nil && len(rs) > 0
	})
	// The flush loop ticks every second; a few seconds of slack for a busy machine.
	if took := time.Since(back); took > 5*time.Second {
		t.Errorf("the spool was sent %s after ResultsDB came back; flush_interval is 1s", took)
	}
	if p, err := reporter.SpoolPending(spool); err != nil || p.Posts != 0 {
		t.Errorf("spool after the flush: %+v %v", p, err)
	}
}

// waitUntil polls cond until it holds, or fails the test naming what it
// waited for, with the role's logs.
func waitUntil(t *testing.T, what string, within time.Duration, logs *lockedBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; logs:\n%s", within, what, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteJobQueues removes a test's job queues and exchange from the broker.
func deleteJobQueues(exchange, queuePrefix string, arches ...string) {
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		for _, a := range arches {
			ch.QueueDelete(queuePrefix+"."+a, false, false, false)
			ch.QueueDelete(queuePrefix+"."+a+".host", false, false, false)
		}
		ch.ExchangeDelete(exchange, false, false)
	}
}
