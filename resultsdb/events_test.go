package resultsdb

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func amqpURL() string {
	if u := os.Getenv("RESULTSDB_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// listen binds a private queue to amq.topic for one routing key.
func listen(t *testing.T, topic string) <-chan amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("RabbitMQ is needed for this test and is not reachable at %s (set RESULTSDB_TEST_AMQP): %v", Redact(amqpURL()), err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, topic, "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return deliveries
}

func receive(t *testing.T, d <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case m := <-d:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no message from the broker within 15s")
	}
	return amqp.Delivery{}
}

func TestEventsOutbox(t *testing.T) {
	eachStore(t, Options{Events: true}, func(t *testing.T, c *client, store Store) {
		topic := randomName("test.") + "." + DefaultTopic
		deliveries := listen(t, topic)

		// Results posted while no publisher runs wait in the outbox.
		first := c.mustPost("/api/v2.0/results", post("FAILED", "dist.rpmlint", "foo-1.0-1.fc30", "koji_build", map[string]any{"arch": []any{"x86_64", "noarch"}}))
		c.mustPost("/api/v2.0/results", post("PASSED", "dist.depcheck", "foo-1.0-1.fc30", "koji_build", nil))

		// A publisher that cannot reach its broker loses nothing.
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		bad := NewPublisher(store, PublisherOptions{URL: "amqp://guest:guest@127.0.0.1:1/", Topic: topic})
		if err := bad.Run(ctx); err != nil {
			t.Fatalf("Run after its context ended: %v", err)
		}
		cancel()
		if pending, err := store.PendingEvents(t.Context(), 10); err != nil || len(pending) != 2 {
			t.Fatalf("outbox after a failed publisher: %v %v, want 2 entries", pending, err)
		}

		ctx, cancel = context.WithCancel(t.Context())
		done := make(chan error, 1)
		pub := NewPublisher(store, PublisherOptions{URL: amqpURL(), Topic: topic, BaseURL: c.base, Poll: time.Minute})
		go func() { done <- pub.Run(ctx) }()

		m := receive(t, deliveries)
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("message body: %v", err)
		}
		if m.RoutingKey != topic || body["id"] != first["id"] || body["outcome"] != "FAILED" || body["href"] != first["href"] || body["origin"] != DefaultOrigin {
			t.Errorf("first message: key %s body %v", m.RoutingKey, body)
		}
		if arch, _ := body["data"].(map[string]any)["arch"].([]any); len(arch) != 2 {
			t.Errorf("data must be lists: %v", body["data"])
		}
		if m.MessageId == "" || m.Headers["fedora_messaging_schema"] != "base.message" || m.ContentType != "application/json" {
			t.Errorf("message properties: id %q headers %v type %q", m.MessageId, m.Headers, m.ContentType)
		}
		receive(t, deliveries)

		// A new result is sent at once (the poll is a minute away).
		third := c.mustPost("/api/v2.0/results", post("INFO", "dist.abicheck", "bar-2-1.fc30", "koji_build", nil))
		m = receive(t, deliveries)
		if err := json.Unmarshal(m.Body, &body); err != nil || body["id"] != third["id"] {
			t.Errorf("third message: %v %s", err, m.Body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			pending, err := store.PendingEvents(t.Context(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox still holds %v after the broker confirmed", pending)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestNoEventsUnlessAsked(t *testing.T) {
	store := openTestStore(t, "sqlite")
	c := startServer(t, store, Options{})
	c.mustPost("/api/v2.0/results", post("PASSED", "x", "y", "z", nil))
	if pending, err := store.PendingEvents(t.Context(), 10); err != nil || len(pending) != 0 {
		t.Errorf("outbox without Events: %v %v", pending, err)
	}
}

// Two publishers on one database never hold the same entry; an entry
// whose publisher vanished is claimed again after its lease.
func TestClaimEvents(t *testing.T) {
	eachStore(t, Options{Events: true}, func(t *testing.T, c *client, store Store) {
		for i := 0; i < 5; i++ {
			c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "foo", "koji_build", nil))
		}
		a, err := store.ClaimEvents(t.Context(), 3, time.Hour)
		if err != nil || len(a) != 3 {
			t.Fatalf("first claim: %v %v", a, err)
		}
		const lease = time.Second
		claimed := time.Now()
		b, err := store.ClaimEvents(t.Context(), 10, lease)
		if err != nil || len(b) != 2 {
			t.Fatalf("second claim: %v %v", b, err)
		}
		for _, x := range a {
			for _, y := range b {
				if x.ID == y.ID {
					t.Fatalf("entry %d claimed twice", x.ID)
				}
			}
		}
		none, _ := store.ClaimEvents(t.Context(), 10, time.Hour)
		// (On a machine too busy to ask within the lease, they may be.)
		if len(none) != 0 && time.Since(claimed) < lease {
			t.Errorf("claimed entries handed out again at once: %v", none)
		}
		if err := store.EventsSent(t.Context(), []int64{a[0].ID, a[1].ID, a[2].ID}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(claimed.Add(lease + 100*time.Millisecond)))
		again, err := store.ClaimEvents(t.Context(), 10, time.Hour)
		if len(none) == 0 && (err != nil || len(again) != 2 || again[0].ID != b[0].ID) {
			t.Errorf("after the lease: %v %v, want %v", again, err, b)
		}
		if left, _ := store.PendingEvents(t.Context(), 10); len(left) != 2 {
			t.Errorf("outbox holds %d entries, want 2", len(left))
		}
	})
}

// Drain returns once the broker has what the outbox held, and says so
// when it has not.
func TestPublisherDrain(t *testing.T) {
	store := openTestStore(t, "sqlite")
	topic := randomName("test.") + "." + DefaultTopic
	deliveries := listen(t, topic)
	if _, err := store.CreateResult(t.Context(), NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.x"}, Event: true}); err != nil {
		t.Fatal(err)
	}

	down := NewPublisher(store, PublisherOptions{URL: "amqp://guest:guest@127.0.0.1:1/", Topic: topic})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	go down.Run(ctx)
	if err := down.Drain(ctx); err == nil {
		t.Fatal("Drain with the broker unreachable: no error, want the outbox reported not empty")
	}
	cancel()

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	pub := NewPublisher(store, PublisherOptions{URL: amqpURL(), Topic: topic, Poll: time.Minute})
	go pub.Run(ctx)
	drainCtx, drainCancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer drainCancel()
	if err := pub.Drain(drainCtx); err != nil {
		t.Fatalf("Drain with the broker up: %v", err)
	}
	if m := receive(t, deliveries); !json.Valid(m.Body) {
		t.Errorf("message body is not JSON: %q", m.Body)
	}
}
