package bus

import (
	"context"
	"expvar"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
)

func testAMQPURL() string {
	if u := os.Getenv("TASKOTRON_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// adminChannel is a plain connection for publishing test messages and
// looking at queues; it removes the named queues at the end of the test.
func adminChannel(t *testing.T, queues ...*string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(testAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", testAMQPURL(), err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			for _, q := range queues {
				c.QueueDelete(*q, false, false, false)
			}
		}
		conn.Close()
	})
	return ch
}

func randomName(prefix string) string {
	return fmt.Sprintf("%s-%d-%x", prefix, time.Now().UnixNano(), rand.Uint32())
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAMQPSource(t *testing.T) {
	queue := randomName("test-trigger")
	dlq := queue + ".deadletter"
	admin := adminChannel(t, &queue, &dlq)
	topicTag := "org.fedoraproject.prod.buildsys.tag." + queue // unique, so other tests' messages stay out
	src, err := OpenAMQPSource(t.Context(), AMQPSourceConfig{URL: testAMQPURL(), Queue: queue, Topics: []string{"#.buildsys.tag." + queue}, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	publish := func(body, id string) {
		err := admin.PublishWithContext(t.Context(), "amq.topic", topicTag, false, false, amqp.Publishing{
			MessageId: id, ContentType: "application/json", Body: []byte(body),
			Headers: amqp.Table{"fedora_messaging_schema": "koji_fedoramessaging.tag.TagV1", "sent-at": "2024-06-20T15:04:24+00:00", "priority": int32(2)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"tag": "f40-updates-pending", "name": "x", "version": "1", "release": "1.fc40"}`, "id-1")
	publish(`{"tag": `, "id-2")
	publish(`["not", "an", "object"]`, "")

	d, err := src.Next(t.Context())
	if err != nil || d.Err != nil {
		t.Fatalf("Next: %v %v", err, d.Err)
	}
	m := d.Message
	if m.ID != "id-1" || m.Topic != topicTag || m.Body["tag"] != "f40-updates-pending" ||
		m.Headers["fedora_messaging_schema"] != "koji_fedoramessaging.tag.TagV1" {
		t.Errorf("message: %+v", m)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"body is not JSON", "body is not a JSON object"} {
		d, err = src.Next(t.Context())
		if err != nil || d.Err == nil || !strings.Contains(d.Err.Error(), want) {
			t.Fatalf("bad message %d: %v %v", i, err, d.Err)
		}
		if err := d.Reject(d.Err.Error()); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := admin.Get(dlq, true)
	if err != nil || !ok {
		t.Fatalf("dead-letter queue %s is empty: %v", dlq, err)
	}
	if string(got.Body) != `{"tag": ` || !strings.Contains(fmt.Sprint(got.Headers[ReasonHeader]), "body is not JSON") || got.Headers["x-taskotron-topic"] != topicTag {
		t.Errorf("dead-lettered: %q %v", got.Body, got.Headers)
	}
	if got.DeliveryMode != amqp.Persistent {
		t.Errorf("dead-lettered message is not persistent")
	}
	waitFor(t, "queue drained", 5*time.Second, func() bool {
		q, err := admin.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0
	})

	// Losing the queue (an operator deleted it, the consumer is cancelled)
	// brings a reconnection that declares and binds it again.
	if _, err := admin.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnection", 10*time.Second, func() bool { return src.Connections() >= 2 })
	waitFor(t, "queue declared again", 10*time.Second, func() bool {
		c, err := admin.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && c.Consumers == 1
	})
	publish(`{"tag": "f41-updates-pending", "name": "x", "version": "1", "release": "1.fc41"}`, "id-3")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d, err = src.Next(ctx)
	if err != nil || d.Message.ID != "id-3" {
		t.Fatalf("after re-declaring: %v %+v", err, d.Message)
	}
	d.Ack()
}

func TestAMQPSourceWatchdog(t *testing.T) {
	queue := randomName("test-watchdog")
	dlq := queue + ".deadletter"
	admin := adminChannel(t, &queue, &dlq)
	topic := "org.fedoraproject.prod.buildsys.tag." + queue
	src, err := OpenAMQPSource(t.Context(), AMQPSourceConfig{URL: testAMQPURL(), Queue: queue, Topics: []string{topic}, Prefetch: 1, Watchdog: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Idle with an empty queue is not a stall.
	time.Sleep(time.Second)
	if n := src.Stalls(); n != 0 {
		t.Fatalf("%d stalls reported for an idle consumer of an empty queue", n)
	}
	before := metricValue(t, "source_stalls")
	for range 5 {
		admin.PublishWithContext(t.Context(), "amq.topic", topic, false, false, amqp.Publishing{Body: []byte(`{}`)})
	}
	// One message taken and never acked: with prefetch 1 nothing more comes
	// while four wait in the queue.
	if _, err := src.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stall report", 5*time.Second, func() bool { return src.Stalls() > 0 })
	if after := metricValue(t, "source_stalls"); after <= before {
		t.Errorf("metric taskotron_amqp.source_stalls did not go up (%d → %d)", before, after)
	}
}

// metricValue reads a counter of the taskotron_amqp expvar map.
func metricValue(t *testing.T, name string) int64 {
	t.Helper()
	v, ok := expvar.Get("taskotron_amqp").(*expvar.Map).Get(name).(*expvar.Int)
	if !ok {
		return 0
	}
	return v.Value()
}

func TestAMQPSourceBadURL(t *testing.T) {
	_, err := OpenAMQPSource(t.Context(), AMQPSourceConfig{URL: "amqp://guest:secret@127.0.0.1:1/", Queue: "x"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable broker: %v", err)
	}
}

func TestAMQPJobQueue(t *testing.T) {
	prefix := randomName("test-jobs")
	x86, x86host, noarch := prefix+".x86_64", prefix+".x86_64.host", prefix+".noarch"
	admin := adminChannel(t, &x86, &x86host, &noarch)
	_ = admin
	exchange := prefix + ".exchange"
	t.Cleanup(func() { admin.ExchangeDelete(exchange, false, false) })
	pubQ, err := OpenAMQPJobQueue(t.Context(), AMQPJobQueueConfig{URL: testAMQPURL(), Exchange: exchange, Queue: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer pubQ.Close()
	job := func(task, arch string, prio int) contract.Job {
		return contract.Job{Item: "foo-1-1.fc40", ItemType: "koji_build", TaskName: task, Arch: arch, UUID: randomName("uuid"), Priority: prio}
	}
	if err := pubQ.Publish(t.Context(), job("low", "x86_64", 1), job("other-arch", "noarch", 5), job("high", "x86_64", 8), job("mid", "x86_64", 4)); err != nil {
		t.Fatal(err)
	}
	worker, err := OpenAMQPJobQueue(t.Context(), AMQPJobQueueConfig{URL: testAMQPURL(), Exchange: exchange, Queue: prefix, Arches: []string{"x86_64"}})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	var order []string
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		d, err := worker.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, fmt.Sprintf("%s/%s/%d", d.Job.TaskName, d.Job.Arch, d.Job.Attempt))
		if d.Job.TaskName == "high" {
			// Handed back once: it comes again, counted as a second attempt.
			if err := d.Nack(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			d, err = worker.Next(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			order = append(order, fmt.Sprintf("%s/%s/%d", d.Job.TaskName, d.Job.Arch, d.Job.Attempt))
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(order); got != "[high/x86_64/1 high/x86_64/2 mid/x86_64/1 low/x86_64/1]" {
		t.Errorf("order: %s", got)
	}
	q, err := admin.QueueDeclarePassive(noarch, true, false, false, false, amqp.Table{"x-max-priority": int32(9)})
	if err != nil || q.Messages != 1 {
		t.Errorf("noarch queue: %+v %v", q, err)
	}
	if err := pubQ.Publish(t.Context(), contract.Job{TaskName: "x"}); err == nil || !strings.Contains(err.Error(), "no arch") {
		t.Errorf("job without arch: %v", err)
	}
}

func FuzzDecodeAMQP(f *testing.F) {
	f.Add([]byte(`{"tag": "f40-updates-pending", "name": "x"}`), "org.fedoraproject.prod.buildsys.tag", "")
	f.Fuzz(func(t *testing.T, body []byte, topic, id string) {
		msg, err := decodeAMQP(amqp.Delivery{Body: body, RoutingKey: topic, MessageId: id})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if msg.Body == nil || msg.ID == "" || msg.Topic != topic {
			t.Fatalf("decoded message without body or id: %+v", msg)
		}
	})
}

// A match_host_arch job waits for a worker on a machine of its arch, even
// when workers on other machines take that arch's plain jobs.
func TestAMQPJobQueueMatchHostArch(t *testing.T) {
	prefix := randomName("test-hostarch")
	queues := []string{prefix + ".i686", prefix + ".i686.host", prefix + ".x86_64", prefix + ".x86_64.host", prefix + ".noarch"}
	ptrs := make([]*string, len(queues))
	for i := range queues {
		ptrs[i] = &queues[i]
	}
	admin := adminChannel(t, ptrs...)
	exchange := prefix + ".exchange"
	t.Cleanup(func() { admin.ExchangeDelete(exchange, false, false) })
	open := func(host string, arches ...string) *AMQPJobQueue {
		q, err := OpenAMQPJobQueue(t.Context(), AMQPJobQueueConfig{URL: testAMQPURL(), Exchange: exchange, Queue: prefix, Arches: arches, HostArch: host, Prefetch: 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	const hostOnly = true
	job := func(uuid, arch string, matchHost bool) contract.Job {
		return contract.Job{Item: "foo-1-1.fc40", ItemType: "koji_build", TaskName: "abicheck", Arch: arch, UUID: uuid, MatchHostArch: matchHost}
	}
	pub := open("x86_64")
	if err := pub.Publish(t.Context(),
		job("i686-any", "i686", false), job("i686-host", "i686", hostOnly),
		job("x86_64-host", "x86_64", hostOnly), job("noarch-host", "noarch", hostOnly)); err != nil {
		t.Fatal(err)
	}
	take := func(q *AMQPJobQueue) []string {
		var got []string
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			d, err := q.Next(ctx)
			cancel()
			if err != nil {
				// Stop consuming: a worker left open would hold later jobs.
				q.Close()
				sort.Strings(got)
				return got
			}
			got = append(got, d.Job.UUID)
			d.Ack()
		}
	}
	// An x86_64 machine that also runs i686 jobs.
	if got := fmt.Sprint(take(open("x86_64", "x86_64", "i686", "noarch"))); got != "[i686-any noarch-host x86_64-host]" {
		t.Errorf("x86_64 worker took %s, want i686-any noarch-host x86_64-host (never i686-host)", got)
	}
	if got := fmt.Sprint(take(open("i686", "i686"))); got != "[i686-host]" {
		t.Errorf("i686 worker took %s, want i686-host", got)
	}
	// A worker not given its own arch takes no host-only jobs of it.
	if err := pub.Publish(t.Context(), job("x86_64-host-2", "x86_64", hostOnly)); err != nil {
		t.Fatal(err)
	}
	if got := take(open("x86_64", "noarch")); len(got) != 0 {
		t.Errorf("noarch-only worker took %v", got)
	}
	if got := fmt.Sprint(take(open("x86_64", "x86_64"))); got != "[x86_64-host-2]" {
		t.Errorf("x86_64 worker took %s", got)
	}
}

func TestRedactURLHidesThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://taskotron:s3cr%40t@rabbit.example.org:5673/%2f": "amqp://taskotron:***@rabbit.example.org:5673/",
		"amqp://taskotron:s3cr%40t@rabbit.example.org/":         "amqp://taskotron:***@rabbit.example.org/",
		"not a url":                       "not a url",
		"amqp://taskotron:s3cr@t@h:port/": "amqp://taskotron:***@h:port/",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
