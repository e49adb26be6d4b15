package bus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

func readDeadLetters(t *testing.T, path string) []DeadLetter {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	defer f.Close()
	var out []DeadLetter
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d DeadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	return out
}

func TestDeadLetterFileKeepsMessageReasonAndOrigin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-yet", "dead-letters.jsonl")
	reject := DeadLetterFile(path)
	if err := reject("msgs.jsonl:3", []byte(`{"topic": 5}`), "topic is not a string"); err != nil {
		t.Fatal(err)
	}
	if err := reject("msgs.jsonl:4", []byte(`{not json`), "not a JSON object"); err != nil {
		t.Fatal(err)
	}
	got := readDeadLetters(t, path)
	if len(got) != 2 {
		t.Fatalf("%d dead letters, want 2", len(got))
	}
	if got[0].Origin != "msgs.jsonl:3" || got[0].Reason != "topic is not a string" || string(got[0].Message) != `{"topic":5}` || got[0].Raw != "" {
		t.Errorf("JSON message set aside as %+v", got[0])
	}
	if got[1].Origin != "msgs.jsonl:4" || got[1].Raw != "{not json" || got[1].Message != nil {
		t.Errorf("non-JSON message set aside as %+v", got[1])
	}
	if _, err := time.Parse(time.RFC3339Nano, got[0].Time); err != nil {
		t.Errorf("time %q: %v", got[0].Time, err)
	}
}

func TestDeadLetterFileConcurrentLinesStayWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	reject := DeadLetterFile(path)
	big := `{"body": "` + strings.Repeat("x", 64<<10) + `"}`
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := reject("n", []byte(big), strings.Repeat("r", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := readDeadLetters(t, path); len(got) != 20 {
		t.Fatalf("%d whole lines, want 20", len(got))
	}
}

func TestDeadLetterFileErrorNamesThePath(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	err := DeadLetterFile(filepath.Join(blocker, "dead.jsonl"))("x", []byte("{}"), "r")
	if err == nil || !strings.Contains(err.Error(), blocker) {
		t.Fatalf("dead-letter file under a regular file: %v", err)
	}
}

func TestOpenSourceFilesSetsBadMessagesAside(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AMQP.URL = "amqp://guest:guest@127.0.0.1:1/" // ignored: paths are given
	msgs := filepath.Join(t.TempDir(), "m.jsonl")
	os.WriteFile(msgs, []byte(`{"topic": "org.fedoraproject.prod.buildsys.tag", "body": {"tag": "f40-updates-pending"}}
["not", "an", "object"]
`), 0o644)
	src, closeSrc, err := OpenSource(t.Context(), cfg, strings.NewReader(""), []string{msgs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	var good, bad int
	for {
		d, err := src.Next(t.Context())
		if errors.Is(err, ErrDrained) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.Err != nil {
			bad++
			if err := d.Reject(d.Err.Error()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		good++
	}
	if good != 1 || bad != 1 {
		t.Fatalf("good %d bad %d, want 1 and 1", good, bad)
	}
	got := readDeadLetters(t, cfg.DeadLetterFile())
	if len(got) != 1 || got[0].Origin != msgs+":2" || !strings.Contains(got[0].Reason, msgs+":2") {
		t.Fatalf("dead letters %+v: want the second line of %s with its origin", got, msgs)
	}
}

func TestOpenSourceDefaultsToTriggerMessages(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Trigger.Messages = filepath.Join(t.TempDir(), "missing")
	_, _, err := OpenSource(t.Context(), cfg, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), cfg.Trigger.Messages) {
		t.Fatalf("missing trigger.messages: %v", err)
	}
}

func TestOpenSourceAMQP(t *testing.T) {
	queue := randomName("test-open-source")
	dlq := queue + ".deadletter"
	admin := adminChannel(t, &queue, &dlq)
	cfg := config.Default()
	cfg.AMQP.URL = testAMQPURL()
	cfg.AMQP.Queue = queue
	cfg.AMQP.Topics = []string{queue + ".#"}
	src, closeSrc, err := OpenSource(t.Context(), cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	if err := admin.PublishWithContext(t.Context(), "amq.topic", queue+".hello", false, false, amqp.Publishing{Body: []byte(`{"a": 1}`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d, err := src.Next(ctx)
	if err != nil {
		t.Fatalf("no message through the source bound for amqp.topics: %v", err)
	}
	if d.Message.Topic != queue+".hello" || d.Message.Body["a"] != float64(1) {
		t.Errorf("got %+v", d.Message)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}

	cfg.AMQP.URL = "amqp://guest:secret@127.0.0.1:1/"
	if _, _, err := OpenSource(t.Context(), cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable broker: %v", err)
	}
}

func TestOpenJobQueueOnDisk(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	q, closeQ, err := OpenJobQueue(t.Context(), cfg, nil, Consumer{})
	if err != nil {
		t.Fatal(err)
	}
	job := contract.Job{Item: "foo-1-1.fc40", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64", UUID: "u-1"}
	if err := q.Publish(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	closeQ()
	// The queue is in data_dir: another process opening it sees the job.
	q2, closeQ2, err := OpenJobQueue(t.Context(), cfg, nil, Consumer{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ2()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d, err := q2.Next(ctx)
	if err != nil || d.Job.UUID != "u-1" {
		t.Fatalf("job from %s: %+v %v", cfg.Path("queue"), d.Job, err)
	}
}

func TestOpenJobQueueAMQPConsumesTriggerArchesAndNoarch(t *testing.T) {
	stem := randomName("test-open-jobs")
	x86, x86host, noarch, ppc := stem+".x86_64", stem+".x86_64.host", stem+".noarch", stem+".ppc64le"
	admin := adminChannel(t, &x86, &x86host, &noarch, &ppc)
	cfg := config.Default()
	cfg.AMQP.URL = testAMQPURL()
	cfg.AMQP.JobQueue = stem
	cfg.AMQP.JobExchange = stem + ".exchange"
	t.Cleanup(func() { admin.ExchangeDelete(cfg.AMQP.JobExchange, false, false) })
	q, closeQ, err := OpenJobQueue(t.Context(), cfg, nil, Consumer{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ()
	jobs := []contract.Job{
		{Item: "i", ItemType: "koji_build", TaskName: "other", Arch: "ppc64le", UUID: "ppc"},
		{Item: "i", ItemType: "koji_build", TaskName: "python-versions", Arch: "noarch", UUID: "noarch"},
	}
	if err := q.Publish(t.Context(), jobs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d, err := q.Next(ctx)
	if err != nil || d.Job.UUID != "noarch" {
		t.Fatalf("default arches (trigger.arches + noarch): got %+v %v, want the noarch job", d.Job, err)
	}
	d.Ack()
	short, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	if d, err := q.Next(short); err == nil {
		t.Fatalf("took %+v from a queue of an arch it was not given", d.Job)
	}
}
