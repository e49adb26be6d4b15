package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/status"
)

// proxy forwards a local port to RabbitMQ, so a test can take the broker
// away from one process (and give it back) without touching RabbitMQ.
type proxy struct {
	addr  string
	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func startProxy(t *testing.T, addr string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", "127.0.0.1:5672")
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitHTTP(t *testing.T, what, url string, within time.Duration, ok func(code int, body string) bool) (int, string) {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, body = httpGet(t, url); ok(code, body) {
			return code, body
		}
	}
	t.Fatalf("timed out waiting for %s: last %d %q", what, code, body)
	return 0, ""
}

func TestTriggerStatusHealthMetricsAndOutage(t *testing.T) {
	if _, err := amqp.Dial(queueTestAMQP); err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", queueTestAMQP, err)
	}
	old := statusGrace
	statusGrace = time.Second
	t.Cleanup(func() { statusGrace = old })

	px := startProxy(t, "127.0.0.1:0")
	src := queueTestName("stest-trigger")
	stem := queueTestName("stest-jobs")
	exchange := queueTestName("stest.jobs")
	topic := queueTestName("stest.topic")
	statusAddr := freeAddr(t)
	env := []string{
		"TASKOTRON_DATA_DIR=" + t.TempDir(), "TASKOTRON_AMQP_URL=amqp://guest:guest@" + px.addr + "/",
		"TASKOTRON_AMQP_QUEUE=" + src, "TASKOTRON_AMQP_JOB_QUEUE=" + stem, "TASKOTRON_AMQP_JOB_EXCHANGE=" + exchange,
		"TASKOTRON_AMQP_TOPICS=" + topic,
	}
	admin, err := amqp.Dial(queueTestAMQP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := admin.Channel(); err == nil {
			for _, q := range []string{src, src + ".deadletter", stem + ".x86_64", stem + ".x86_64.host", stem + ".noarch"} {
				ch.QueueDelete(q, false, false, false)
			}
			ch.ExchangeDelete(exchange, false, false)
		}
		admin.Close()
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr lockedBuffer
	go func() {
		done <- run(ctx, []string{"trigger", "--status", statusAddr}, strings.NewReader(""), io.Discard, &stderr, env)
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + statusAddr
	waitHTTP(t, "the trigger's /healthz", base+"/healthz", 20*time.Second, func(c int, b string) bool { return c == 200 && b == "ok\n" })

	metrics := func() map[string]float64 {
		code, body := httpGet(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		m, err := status.ParseText(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
		}
		return m
	}
	before := metrics()
	ch, _ := admin.Channel()
	// One message the trigger ignores (no rule knows its topic), one it sets aside.
	ch.Publish("amq.topic", topic, false, false, amqp.Publishing{MessageId: "m1", Body: []byte(`{"hello": "ops"}`)})
	ch.Publish("amq.topic", topic, false, false, amqp.Publishing{MessageId: "m2", Body: []byte("not json")})
	var after map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after = metrics()
		if after[`taskotron_trigger_messages_total{outcome="rejected"}`] == 1 && after[`taskotron_trigger_messages_total{outcome="ignored"}`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message counters did not move: %v\n%s", after, stderr.String())
		}
	}
	if d := after["taskotron_amqp_source_dead_lettered_total"] - before["taskotron_amqp_source_dead_lettered_total"]; d != 1 {
		t.Errorf("dead-lettered moved by %v, want 1", d)
	}
	if d := after["taskotron_amqp_source_delivered_total"] - before["taskotron_amqp_source_delivered_total"]; d != 2 {
		t.Errorf("delivered moved by %v, want 2", d)
	}
	if after["taskotron_trigger_rules"] < 1 || after[`taskotron_up{role="trigger"}`] != 1 || after["taskotron_amqp_source_connected"] != 1 {
		t.Errorf("rules, up, connected: %v", after)
	}
	// The queue depths come from the broker, cached.
	waitHTTP(t, "the dead-letter queue depth in /metrics", base+"/metrics", 15*time.Second, func(c int, b string) bool {
		// The client library writes labels in name order.
		return strings.Contains(b, `taskotron_queue_ready{kind="deadletter",queue="`+src+`.deadletter"} 1`)
	})

	_, body := httpGet(t, base+"/status")
	var doc struct {
		Role    string
		Healthy bool
		Parts   struct {
			Trigger struct {
				Counters struct {
					Messages    int
					LastMessage time.Time `json:"last_message"`
				}
				Rules struct{ Count int }
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if doc.Role != "trigger" || !doc.Healthy || doc.Parts.Trigger.Counters.Messages != 2 || doc.Parts.Trigger.Rules.Count < 1 || doc.Parts.Trigger.Counters.LastMessage.IsZero() {
		t.Errorf("/status: %s", body)
	}
	if code, _ := httpGet(t, base+"/debug/vars"); code != 200 {
		t.Errorf("/debug/vars: %d", code)
	}

	// The broker goes away for this trigger: after the grace, 503 with one line.
	px.stop()
	_, reason := waitHTTP(t, "/healthz to say 503", base+"/healthz", 15*time.Second, func(c int, b string) bool { return c == 503 })
	if !strings.Contains(reason, "amqp source") || strings.Count(reason, "\n") != 1 {
		t.Errorf("503 reason %q: want one line naming the AMQP source", reason)
	}
	if m := metrics(); m[`taskotron_up{role="trigger"}`] != 0 || m["taskotron_amqp_source_connected"] != 0 {
		t.Errorf("during the outage: up %v connected %v", m[`taskotron_up{role="trigger"}`], m["taskotron_amqp_source_connected"])
	}
	// And comes back on the same address: 200 again once reconnected.
	startProxy(t, px.addr)
	waitHTTP(t, "/healthz to come back", base+"/healthz", 45*time.Second, func(c int, b string) bool { return c == 200 })
}
