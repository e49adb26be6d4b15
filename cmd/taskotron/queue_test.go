package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/status"
)

const queueTestAMQP = "amqp://guest:guest@127.0.0.1:5672/"

func queueTestName(prefix string) string {
	return fmt.Sprintf("%s-%d-%x", prefix, time.Now().UnixNano(), rand.Uint32())
}

func testJob(uuid, task, arch string) contract.Job {
	return contract.Job{UUID: uuid, Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: task, Arch: arch, Created: time.Now().UTC()}
}

// spoolTwoPosts reports one execution with two results while ResultsDB
// refuses connections, so both posts wait in the data folder's spool.
// spooledGroup is the execution spoolTwoPosts reports.
const spooledGroup = "0b5cc8a6-1111-4bbb-8ccc-0000000000aa"

func spoolTwoPosts(t *testing.T, dataDir string) {
	t.Helper()
	away := httptest.NewServer(http.NotFoundHandler())
	away.Close()
	exec := `{"uuid": "` + spooledGroup + `", "execution_status": "OK", "exit_code": 0, "artifacts": "",
	  "item": "xchat-0.5-1.fc20", "item_type": "koji_build", "taskname": "rpmlint", "arch": "x86_64",
	  "results": [{"item": "xchat-0.5-1.fc20", "type": "koji_build", "checkname": "dist.rpmlint", "outcome": "PASSED", "arch": "x86_64"},
	              {"item": "xchat-0.5-1.fc20", "type": "koji_build", "checkname": "dist.rpmlint", "outcome": "FAILED", "arch": "src"}]}`
	file := filepath.Join(t.TempDir(), "exec.json")
	os.WriteFile(file, []byte(exec), 0o644)
	code, stdout, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + dataDir, "TASKOTRON_RESULTSDB_URL=" + away.URL}, "report", file)
	if code != 0 || !strings.Contains(stdout, "spooled 2") {
		t.Fatalf("report with ResultsDB away: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func queueJSON(t *testing.T, env []string) status.QueueView {
	t.Helper()
	code, stdout, stderr := runCLI(t, env, "queue", "--json")
	if code != 0 {
		t.Fatalf("queue --json: exit %d\n%s", code, stderr)
	}
	var v status.QueueView
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("queue --json printed no JSON: %v\n%s", err, stdout)
	}
	return v
}

func TestQueueShowsAMQPQueuesDeadLettersAndSpool(t *testing.T) {
	ctx := context.Background()
	stem := queueTestName("qtest-jobs")
	src := queueTestName("qtest-trigger")
	exchange := queueTestName("qtest.jobs")
	topic := queueTestName("qtest.topic")
	dataDir := t.TempDir()
	env := []string{
		"TASKOTRON_DATA_DIR=" + dataDir, "TASKOTRON_AMQP_URL=" + queueTestAMQP,
		"TASKOTRON_AMQP_JOB_QUEUE=" + stem, "TASKOTRON_AMQP_QUEUE=" + src, "TASKOTRON_AMQP_JOB_EXCHANGE=" + exchange,
		"TASKOTRON_TRIGGER_ARCHES=x86_64,i686",
	}
	conn, err := amqp.Dial(queueTestAMQP)
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", queueTestAMQP, err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			for _, q := range []string{stem + ".x86_64", stem + ".x86_64.host", stem + ".i686", stem + ".i686.host", stem + ".noarch", src, src + ".deadletter"} {
				ch.QueueDelete(q, false, false, false)
			}
			ch.ExchangeDelete(exchange, false, false)
		}
		conn.Close()
	})

	// Before anything ran, every queue is shown as missing, not as an error.
	v := queueJSON(t, env)
	if len(v.Queues) != 7 {
		t.Fatalf("want 7 queues (x86_64, i686 and their .host, noarch, source, deadletter), got %+v", v.Queues)
	}
	for _, q := range v.Queues {
		if q.Exists {
			t.Errorf("queue %s shown as existing before anything declared it", q.Name)
		}
	}
	code, out, _ := runCLI(t, env, "queue")
	if code != 0 || !strings.Contains(out, stem+".x86_64") || !strings.Contains(out, "does not exist yet") {
		t.Fatalf("queue with nothing declared: exit %d\n%s", code, out)
	}

	jq, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: queueTestAMQP, Exchange: exchange, Queue: stem, Arches: []string{"x86_64", "noarch"}})
	if err != nil {
		t.Fatal(err)
	}
	hostJob := testJob("u-host", "rpmlint", "i686")
	hostJob.MatchHostArch = true
	if err := jq.Publish(ctx, testJob("u1", "rpmlint", "x86_64"), testJob("u2", "rpmlint", "x86_64"), testJob("u3", "depcheck", "x86_64"),
		testJob("u4", "python-versions", "noarch"), hostJob); err != nil {
		t.Fatal(err)
	}
	jq.Close()

	// A malformed message goes through the trigger's source into the dead-letter queue.
	s, err := bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{URL: queueTestAMQP, Queue: src, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := conn.Channel()
	if err := pub.Publish("amq.topic", topic, false, false, amqp.Publishing{Body: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	d, err := s.Next(nctx)
	cancel()
	if err != nil || d.Err == nil {
		t.Fatalf("the malformed message: %v, %v", err, d.Err)
	}
	if err := d.Reject(d.Err.Error()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	spoolTwoPosts(t, dataDir)

	v = queueJSON(t, env)
	got := map[string]bus.QueueDepth{}
	for _, q := range v.Queues {
		got[q.Name] = q
	}
	want := map[string]int{stem + ".x86_64": 3, stem + ".noarch": 1, stem + ".i686.host": 1, src + ".deadletter": 1, src: 0}
	for name, n := range want {
		if q := got[name]; !q.Exists || q.Ready != n {
			t.Errorf("queue %s: %+v, want it to exist with %d ready", name, q, n)
		}
	}
	// A worker on this x86_64 host declared x86_64.host; nothing declared i686.
	for _, name := range []string{stem + ".i686"} {
		if got[name].Exists {
			t.Errorf("queue %s exists; nothing declared it", name)
		}
	}
	if strings.Contains(fmt.Sprint(v.Broker), "guest:guest") {
		t.Errorf("the broker URL shows its password: %s", v.Broker)
	}
	if v.Spool.Posts != 2 {
		t.Errorf("spool: %+v, want 2 posts waiting", v.Spool)
	}
	if v.Unseen == "" {
		t.Error("the JSON does not say that unacked jobs are not visible over AMQP")
	}
	code, out, _ = runCLI(t, env, "queue")
	if code != 0 {
		t.Fatalf("queue: exit %d", code)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == stem+".x86_64" && f[2] != "3" {
			t.Errorf("table row %q: want 3 ready", line)
		}
		if len(f) >= 3 && f[0] == src+".deadletter" && f[2] != "1" {
			t.Errorf("table row %q: want 1 ready", line)
		}
	}
	if !strings.Contains(out, "2 posts waiting") {
		t.Errorf("table does not show the spooled posts:\n%s", out)
	}
}

func TestQueueShowsTheDiskQueue(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + dataDir}
	q, err := bus.OpenDiskQueue(filepath.Join(dataDir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := q.Publish(ctx, testJob("d1", "rpmlint", "x86_64"), testJob("d2", "rpmlint", "x86_64"), testJob("d3", "depcheck", "noarch")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Next(ctx); err != nil { // taken, not acked: a worker runs it
		t.Fatal(err)
	}
	reject := bus.DeadLetterFile(config.Config{DataDir: dataDir}.DeadLetterFile())
	if err := reject("file:msgs.jsonl:3", []byte("{"), "body is not JSON"); err != nil {
		t.Fatal(err)
	}
	spoolTwoPosts(t, dataDir)

	v := queueJSON(t, env)
	if v.DiskQueue == nil || v.DiskQueue.Waiting != 2 || v.DiskQueue.Taken != 1 {
		t.Fatalf("disk queue: %+v, want 2 waiting and 1 taken", v.DiskQueue)
	}
	if v.DiskQueue.ByArchTask["x86_64/rpmlint"] != 2 || v.DiskQueue.ByArchTask["noarch/depcheck"] != 1 {
		t.Errorf("by arch/task: %v", v.DiskQueue.ByArchTask)
	}
	if v.DeadLetterFile == nil || v.DeadLetterFile.Count != 1 {
		t.Errorf("dead letters: %+v, want 1", v.DeadLetterFile)
	}
	if v.Spool.Posts != 2 {
		t.Errorf("spool: %+v, want 2 posts", v.Spool)
	}
	code, out, _ := runCLI(t, env, "queue")
	for _, want := range []string{"2 waiting, 1 taken", "x86_64/rpmlint", "Dead letters", ": 1", "2 posts waiting"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("queue table (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

func TestQueueUnreachableBrokerIsOneLine(t *testing.T) {
	code, stdout, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + t.TempDir(), "TASKOTRON_AMQP_URL=amqp://ops:hunter2@127.0.0.1:1/"}, "queue")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("want one line on stderr and nothing else; stdout %q stderr %q", stdout, stderr)
	}
	if strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("stderr %q: want the URL without the password", stderr)
	}
}
