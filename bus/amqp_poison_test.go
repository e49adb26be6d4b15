package bus

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
)

// What the broker refuses and what no header may hold, on the real
// RabbitMQ: a job queue refuses a job for its content (ErrRefused) only when
// that job is the one refused, and keeps headers within a frame.

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 40), 20, "aaaaaaa…[40 bytes]"},
		{strings.Repeat("é", 20), 20, "ééé…[40 bytes]"}, // cut on a rune boundary
		{strings.Repeat("a", 40), 3, "…[40 bytes]"},
	} {
		got := Truncate(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if len(c.in) > c.max && c.max >= len("…[40 bytes]") && len(got) > c.max {
			t.Errorf("Truncate(%q, %d) is %d bytes", c.in, c.max, len(got))
		}
	}
}

func openTestJobQueue(t *testing.T, maxJob int) (*AMQPJobQueue, *amqp.Channel, string) {
	t.Helper()
	prefix := randomName("test-poison-jobs")
	queue := prefix + ".x86_64"
	admin := adminChannel(t, &queue)
	t.Cleanup(func() { admin.ExchangeDelete(prefix+"-exchange", false, false) })
	q, err := OpenAMQPJobQueue(t.Context(), AMQPJobQueueConfig{URL: testAMQPURL(), Exchange: prefix + "-exchange", Queue: prefix, Arches: []string{"x86_64"}, MaxJobBytes: maxJob})
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", testAMQPURL(), err)
	}
	t.Cleanup(func() { q.Close() })
	return q, admin, queue
}

func smallJob(task string) contract.Job {
	return contract.Job{Item: "foo-1-1.fc40", ItemType: "koji_build", TaskName: task, Arch: "x86_64", UUID: randomName("uuid"), Created: time.Now().UTC()}
}

// A job whose item is 6 MiB (of two-byte characters) is queued: its headers
// hold the start of the item, its body the whole of it.
func TestAMQPJobQueueHeadersHoldTheStartOfLongValues(t *testing.T) {
	q, admin, queue := openTestJobQueue(t, 16<<20)
	j := smallJob("rpmlint")
	j.Item = strings.Repeat("é", 3<<20)
	if err := q.Publish(t.Context(), j); err != nil {
		t.Fatalf("a job with a 6 MiB item: %v", err)
	}
	var d amqp.Delivery
	waitFor(t, "the job", 10*time.Second, func() bool {
		var ok bool
		d, ok, _ = admin.Get(queue, true)
		return ok
	})
	item, _ := d.Headers["item"].(string)
	if len(item) > MaxHeaderValue || !utf8.ValidString(item) || !strings.HasPrefix(item, "éé") || !strings.HasSuffix(item, "…[6291456 bytes]") {
		t.Errorf("item header (%d bytes): %q", len(item), item)
	}
	if d.Headers["taskname"] != "rpmlint" || d.Headers["item_type"] != "koji_build" {
		t.Errorf("headers: %v", d.Headers)
	}
	var got contract.Job
	if err := json.Unmarshal(d.Body, &got); err != nil || got.Item != j.Item {
		t.Errorf("body item is %d bytes (%v), want the whole %d", len(got.Item), err, len(j.Item))
	}
}

// A job over MaxJobBytes is refused before any job of the call is sent.
func TestAMQPJobQueueRefusesABigJobBeforeSendingAny(t *testing.T) {
	q, admin, queue := openTestJobQueue(t, 0)
	big := smallJob("check-" + strings.Repeat("b", 2<<20))
	err := q.Publish(t.Context(), smallJob("rpmlint"), big)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), big.UUID) || !strings.Contains(err.Error(), "more than the 1048576 a job may be") || len(err.Error()) > 400 {
		t.Fatalf("a 2 MiB job: %.400v", err)
	}
	if st, err := admin.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil || st.Messages != 0 {
		t.Errorf("the call's other job was sent: %+v %v", st, err)
	}
	if err := q.Publish(t.Context(), smallJob("rpmlint")); err != nil {
		t.Errorf("a normal job after: %v", err)
	}
}

// The broker refuses a job over its max_message_size (128 MiB on RabbitMQ
// 3, 16 MiB on 4) and closes the channel, which other callers publish on
// at the same time: only the big job's Publish is refused; the others' are
// published, alone or again.
func TestAMQPJobQueueBrokerRefusalIsTheRefusedJobsOnly(t *testing.T) {
	q, admin, queue := openTestJobQueue(t, 1<<30)
	huge := smallJob("huge")
	huge.Item = strings.Repeat("h", 129<<20)
	var wg sync.WaitGroup
	hugeDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		hugeDone <- q.Publish(context.Background(), huge)
	}()
	var mu sync.Mutex
	published, refused := 0, 0
	var hugeErr error
	deadline := time.After(2 * time.Minute)
	for done := false; !done; {
		select {
		case hugeErr = <-hugeDone:
			done = true
		case <-deadline:
			t.Fatal("the 129 MiB job's Publish did not return")
		default:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := q.Publish(context.Background(), smallJob("small"))
				mu.Lock()
				switch {
				case err == nil:
					published++
				case errors.Is(err, ErrRefused):
					refused++
					t.Errorf("a small job was refused: %v", err)
				}
				mu.Unlock()
				if err == nil || errors.Is(err, ErrRefused) {
					return
				}
				time.Sleep(50 * time.Millisecond) // an outage for it: try again, as the relay does
			}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if !errors.Is(hugeErr, ErrRefused) || !strings.Contains(hugeErr.Error(), "PRECONDITION_FAILED - message size") || !strings.Contains(hugeErr.Error(), huge.UUID) {
		t.Fatalf("the 129 MiB job: %.500v", hugeErr)
	}
	t.Logf("refused: %v; %d small jobs published meanwhile", hugeErr, published)
	if published == 0 || refused != 0 {
		t.Fatalf("%d small jobs published, %d refused", published, refused)
	}
	// Every small job is in the queue (a confirm lost with the channel may
	// have sent one twice), and the big one is not.
	seen := map[string]bool{}
	for {
		d, ok, err := admin.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if len(d.Body) > 1<<20 {
			t.Fatalf("the refused job is in the queue")
		}
		seen[d.MessageId] = true
	}
	if len(seen) != published {
		t.Errorf("%d distinct small jobs in the queue, %d published", len(seen), published)
	}
}

// A message set aside keeps its body; its headers fit in a frame: the
// reason is cut, and a header of its own too large to leave room is dropped
// and named. A dead-letter channel the broker closed is opened again.
func TestAMQPSourceDeadLetterFitsInAFrame(t *testing.T) {
	queue := randomName("test-poison-source")
	dlq := queue + ".deadletter"
	admin := adminChannel(t, &queue, &dlq)
	topic := "org.fedoraproject.prod.buildsys.tag." + queue
	src, err := OpenAMQPSource(t.Context(), AMQPSourceConfig{URL: testAMQPURL(), Queue: queue, Topics: []string{topic}, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	frame := 128 << 10
	for i, id := range []string{"big-headers", "after-channel-closed"} {
		body := `{"tag": "f40-updates-pending", "n": ` + string(rune('0'+i)) + `}`
		err := admin.PublishWithContext(t.Context(), "amq.topic", topic, false, false, amqp.Publishing{
			MessageId: id, ContentType: "application/json", Body: []byte(body),
			Headers: amqp.Table{"big": strings.Repeat("x", frame-2048), "small": "kept"},
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := src.Next(t.Context())
		if err != nil || d.Message.ID != id {
			t.Fatalf("Next: %v %+v", err, d.Message)
		}
		if i == 1 {
			src.mu.Lock()
			src.cur.pub.Close() // as the broker does when it refuses a publish
			src.mu.Unlock()
		}
		if err := d.Reject("malformed: field \"name\" is huge: " + strings.Repeat("n", 5<<20)); err != nil {
			t.Fatalf("%s: Reject: %v", id, err)
		}
		got, ok, err := admin.Get(dlq, true)
		if err != nil || !ok {
			t.Fatalf("%s: not in the dead-letter queue: %v", id, err)
		}
		reason, _ := got.Headers[ReasonHeader].(string)
		if string(got.Body) != body || len(reason) > MaxReason || !strings.HasPrefix(reason, `malformed: field "name" is huge: nnn`) || !strings.HasSuffix(reason, "bytes]") {
			t.Errorf("%s: body %q, reason (%d bytes) %.100q…", id, got.Body, len(reason), reason)
		}
		if _, kept := got.Headers["big"]; kept || got.Headers["small"] != "kept" || got.Headers["x-taskotron-dropped-headers"] != "big" {
			t.Errorf("%s: headers: small=%v dropped=%v big kept=%v", id, got.Headers["small"], got.Headers["x-taskotron-dropped-headers"], kept)
		}
	}
	if n := src.Connections(); n != 1 {
		t.Errorf("the source reconnected (%d connections): a dead-letter publish broke the connection", n)
	}
}

// A message whose headers cannot fit in a frame is not sent: the broker
// would close the connection, failing every message on it.
func TestAMQPPublisherRefusesHeadersOverAFrame(t *testing.T) {
	queue := randomName("test-poison-publisher")
	admin := adminChannel(t, &queue)
	if _, err := admin.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueueBind(queue, queue, "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	pub, err := OpenAMQPPublisher(testAMQPURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	big := contract.Message{ID: "big-headers", Topic: queue, Headers: map[string]any{"x": strings.Repeat("x", 200<<10)}, Body: map[string]any{"a": 1.0}}
	err = pub.Publish(t.Context(), big)
	if err == nil || !strings.Contains(err.Error(), "message big-headers: its headers are") {
		t.Fatalf("headers of 200 KiB: %v", err)
	}
	if err := pub.Publish(t.Context(), contract.Message{ID: "after", Topic: queue, Body: map[string]any{"a": 2.0}}); err != nil {
		t.Fatalf("the next message: %v", err)
	}
	waitFor(t, "the next message", 5*time.Second, func() bool {
		d, ok, _ := admin.Get(queue, true)
		return ok && d.MessageId == "after"
	})
}
