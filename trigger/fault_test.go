package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// The fault tests run the trigger against the real RabbitMQ on this
// machine, with their own queues and exchange (random names).

func amqpURL() string {
	if u := os.Getenv("TASKOTRON_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// faultSetup names everything one fault test uses.
type faultSetup struct {
	Prefix   string // topic prefix, queue and exchange names
	StateDB  string
	Messages int
}

func (f faultSetup) topic() string          { return f.Prefix + ".buildsys.build.state.change" }
func (f faultSetup) sourceQueue() string    { return f.Prefix + "-trigger" }
func (f faultSetup) jobExchange() string    { return f.Prefix + "-jobs-exchange" }
func (f faultSetup) jobQueuePrefix() string { return f.Prefix + "-jobs" }

const faultRules = "- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [lint, abi]}]\n"

func newFaultSetup(t *testing.T, n int) faultSetup {
	f := faultSetup{Prefix: fmt.Sprintf("faulttest-%d-%x", time.Now().UnixNano(), rand.Uint32()), StateDB: filepath.Join(t.TempDir(), "state.sqlite"), Messages: n}
	t.Cleanup(func() {
		conn, err := amqp.Dial(amqpURL())
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range []string{f.sourceQueue(), f.sourceQueue() + ".deadletter", f.jobQueuePrefix() + ".x86_64", f.jobQueuePrefix() + ".x86_64.host"} {
			ch.QueueDelete(q, false, false, false)
		}
		ch.ExchangeDelete(f.jobExchange(), false, false)
	})
	return f
}

func (f faultSetup) openSource(ctx context.Context, log *slog.Logger) (*bus.AMQPSource, error) {
	return bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{URL: amqpURL(), Queue: f.sourceQueue(), Topics: []string{f.Prefix + ".#"},
		Prefetch: 50, MaxBackoff: 500 * time.Millisecond, Log: log})
}

func (f faultSetup) openJobs(ctx context.Context, consume bool) (*bus.AMQPJobQueue, error) {
	cfg := bus.AMQPJobQueueConfig{URL: amqpURL(), Exchange: f.jobExchange(), Queue: f.jobQueuePrefix(), Prefetch: 100}
	if consume {
		cfg.Arches = []string{"x86_64"}
	}
	return bus.OpenAMQPJobQueue(ctx, cfg)
}

func (f faultSetup) message(i int) contract.Message {
	return contract.Message{ID: fmt.Sprintf("%s-msg-%04d", f.Prefix, i), Topic: f.topic(), Body: map[string]any{
		"new": 1, "old": 0, "name": fmt.Sprintf("pkg%04d", i), "version": "1.0", "release": "1.fc40", "instance": "primary", "attribute": "state",
	}}
}

// publishAll puts the messages on amq.topic, retrying through broker
// outages. A message may reach the queue twice (a lost confirm): the
// trigger has to cope with that too.
func (f faultSetup) publishAll(ctx context.Context, t *testing.T, from, to int, pace time.Duration) {
	var pub *bus.AMQPPublisher
	defer func() {
		if pub != nil {
			pub.Close()
		}
	}()
	for i := from; i < to; i++ {
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if pub == nil {
				pub, err = bus.OpenAMQPPublisher(amqpURL(), "")
			}
			if err == nil {
				err = pub.Publish(ctx, f.message(i))
			}
			if err == nil {
				break
			}
			if pub != nil {
				pub.Close()
				pub = nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
}

// jobCollector consumes the job queue and counts what arrives.
type jobCollector struct {
	mu         sync.Mutex
	byKey      map[string]map[string]int // msg_id/task -> uuid -> deliveries
	deliveries int
	// brokerRedelivered counts deliveries the broker flagged as redelivered
	// (the job queue counts them as a further attempt).
	brokerRedelivered int
}

func (f faultSetup) collect(ctx context.Context, t *testing.T) *jobCollector {
	c := &jobCollector{byKey: map[string]map[string]int{}}
	go func() {
		var q *bus.AMQPJobQueue
		for ctx.Err() == nil {
			var err error
			if q == nil {
				if q, err = f.openJobs(ctx, true); err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			d, err := q.Next(ctx)
			if err != nil {
				q.Close()
				q = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c.mu.Lock()
			k := d.Job.MsgID + "/" + d.Job.TaskName
			if c.byKey[k] == nil {
				c.byKey[k] = map[string]int{}
			}
			c.byKey[k][d.Job.UUID]++
			c.deliveries++
			if d.Job.Attempt >= 2 {
				c.brokerRedelivered++
			}
			c.mu.Unlock()
			d.Ack()
		}
		if q != nil {
			q.Close()
		}
	}()
	return c
}

func (c *jobCollector) keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// check asserts every message made its two jobs, each exactly once: one
// uuid per message and task. A job (one uuid) delivered again is the job
// queue's at-least-once delivery (an ack lost with the broker, a confirm
// lost and the publish retried); runners key on the uuid. It is allowed only
// when redelivered is set.
func (c *jobCollector) check(t *testing.T, f faultSetup, redelivered bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	missing, extraJobs, repeated := 0, 0, 0
	for i := range f.Messages {
		for _, task := range []string{"lint", "abi"} {
			uuids := c.byKey[f.message(i).ID+"/"+task]
			if len(uuids) == 0 {
				missing++
			}
			if len(uuids) > 1 {
				extraJobs += len(uuids) - 1
			}
			for _, n := range uuids {
				repeated += n - 1
			}
		}
	}
	t.Logf("%d job deliveries for %d messages: %d missing, %d second jobs, %d repeated deliveries of one job (%d flagged redelivered by the broker)",
		c.deliveries, f.Messages, missing, extraJobs, repeated, c.brokerRedelivered)
	if missing > 0 || extraJobs > 0 || (repeated > 0 && !redelivered) || len(c.byKey) != 2*f.Messages {
		t.Fatalf("not exactly once: %d missing, %d second jobs, %d repeated deliveries, %d keys for %d messages", missing, extraJobs, repeated, len(c.byKey), f.Messages)
	}
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartBroker stops and starts the RabbitMQ application; whatever
// happens, it is running again when the test ends.
func restartBroker(t *testing.T, down time.Duration) {
	t.Helper()
	started := false
	start := func() {
		if started {
			return
		}
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app: %v\n%s", err, out)
			return
		}
		started = true
	}
	t.Cleanup(start)
	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app (the fault test restarts the broker): %v\n%s", err, out)
	}
	time.Sleep(down)
	start()
}

// 1,000 messages stream in while the broker is restarted in the middle:
// every message yields its jobs exactly once.
func TestFaultBrokerRestart(t *testing.T) {
	f := newFaultSetup(t, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := f.openSource(ctx, log)
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", amqpURL(), err)
	}
	defer src.Close()
	jobs, err := f.openJobs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	store, err := OpenDedup(ctx, "sqlite:"+f.StateDB)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rules, err := ParseRules("fault rules", []byte(faultRules), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{Rules: rules, Dedup: store, Log: log})
	collected := f.collect(ctx, t)
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		RelayWith(ctx, src, tr, jobs, RelayOptions{Log: log})
	}()
	published := make(chan struct{})
	go func() {
		defer close(published)
		f.publishAll(ctx, t, 0, f.Messages, 5*time.Millisecond)
	}()
	waitUntil(t, "a third of the jobs", 60*time.Second, func() bool { return collected.keys() >= 2*f.Messages/3 })
	select {
	case <-published:
		t.Fatal("the whole stream was published before the restart; slow the pace down")
	default:
	}
	restartBroker(t, 500*time.Millisecond)
	<-published
	waitUntil(t, "every message's jobs", 120*time.Second, func() bool { return collected.keys() >= 2*f.Messages })
	if src.Connections() < 2 {
		t.Errorf("the source did not reconnect (%d connections)", src.Connections())
	}
	time.Sleep(time.Second) // anything extra would show up now
	cancel()
	<-relayDone
	collected.check(t, f, true)
}

// The trigger process is killed (SIGKILL) after its jobs for a message are
// confirmed and before the message is acked, twice; each time a new process
// takes over from the same state. Every message yields its jobs exactly once.
func TestFaultKillBetweenPublishAndAck(t *testing.T) {
	f := newFaultSetup(t, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Declare the queue before publishing, as a running trigger would have.
	src, err := f.openSource(ctx, nil)
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed: %v", amqpURL(), err)
	}
	src.Close()
	f.publishAll(ctx, t, 0, f.Messages, 0)
	collected := f.collect(ctx, t)

	run := func(killAfter int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultHelperProcess$")
		setup, _ := json.Marshal(f)
		cmd.Env = append(os.Environ(), "TRIGGER_FAULT_HELPER="+string(setup), "TRIGGER_FAULT_KILL_AFTER="+strconv.Itoa(killAfter))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for _, killAfter := range []int{300, 400} {
		cmd := run(killAfter)
		err := cmd.Wait()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("helper was to be killed after %d messages: %v", killAfter, err)
		}
	}
	cmd := run(0)
	waitUntil(t, "every message's jobs", 120*time.Second, func() bool { return collected.keys() >= 2*f.Messages })
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	cancel()
	collected.check(t, f, false)
}

// TestFaultHelperProcess is the trigger process of the kill test; it runs
// only when started by it.
func TestFaultHelperProcess(t *testing.T) {
	raw := os.Getenv("TRIGGER_FAULT_HELPER")
	if raw == "" {
		return
	}
	var f faultSetup
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatal(err)
	}
	killAfter, _ := strconv.Atoi(os.Getenv("TRIGGER_FAULT_KILL_AFTER"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := f.openSource(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	jobs, err := f.openJobs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	store, err := OpenDedup(ctx, "sqlite:"+f.StateDB)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rules, _ := ParseRules("fault rules", []byte(faultRules), nil)
	var acked int
	RelayWith(ctx, src, New(Options{Rules: rules, Dedup: store, Log: log}), jobs, RelayOptions{
		Log:     log,
		Workers: 1,
		BeforeAck: func(contract.Message, []contract.Job) {
			acked++
			if killAfter > 0 && acked == killAfter {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Hour)
			}
		},
	})
}
