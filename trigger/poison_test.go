package trigger

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// The poison tests run the trigger against the real RabbitMQ with their own
// queues (random names): a message that cannot make jobs goes to the
// dead-letter queue with its reason, and the messages behind it are not
// held up.

// poisonRules schedule rpmlint for every build, and, for a build whose
// message carries a `blob`, a task named after it: a job too big to queue
// although every field the normaliser reads is sane.
const poisonRules = `- when: {message_type: KojiBuildPackageCompleted}
  do: [{tasks: [rpmlint]}]
- when: {message_type: KojiBuildPackageCompleted, _msg.blob: {$exists: true}}
  do: [{tasks: ['check-${_msg.blob}']}]
`

type poisonSetup struct {
	prefix string
	dir    string
}

func newPoisonSetup(t *testing.T) poisonSetup {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed (set TASKOTRON_TEST_AMQP): %v", amqpURL(), err)
	}
	conn.Close()
	p := poisonSetup{prefix: fmt.Sprintf("poisontest-%d-%x", time.Now().UnixNano(), rand.Uint32()), dir: t.TempDir()}
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
		for _, q := range []string{p.sourceQueue(), p.sourceQueue() + ".deadletter", p.prefix + "-jobs.x86_64", p.prefix + "-jobs.x86_64.host"} {
			ch.QueueDelete(q, false, false, false)
		}
		ch.ExchangeDelete(p.prefix+"-jobs-exchange", false, false)
	})
	return p
}

func (p poisonSetup) sourceQueue() string { return p.prefix + "-trigger" }
func (p poisonSetup) topic() string       { return p.prefix + ".buildsys.build.state.change" }

func (p poisonSetup) build(id, name string, more map[string]any) contract.Message {
	body := map[string]any{"new": 1, "old": 0, "name": name, "version": "1.0", "release": "1.fc40", "instance": "primary", "attribute": "state", "build_id": 4242}
	for k, v := range more {
		body[k] = v
	}
	return contract.Message{ID: p.prefix + "-" + id, Topic: p.topic(), Body: body}
}

func (p poisonSetup) publish(t *testing.T, msgs ...contract.Message) {
	t.Helper()
	pub, err := bus.OpenAMQPPublisher(amqpURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(t.Context(), msgs...); err != nil {
		t.Fatalf("publishing the test messages: %v", err)
	}
}

// collectJobs consumes the x86_64 job queue and keeps the jobs by message id.
func (p poisonSetup) collectJobs(t *testing.T) *jobsByMsg {
	ctx, cancel := context.WithCancel(context.Background())
	c := &jobsByMsg{m: map[string][]contract.Job{}, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-c.done })
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: amqpURL(), Exchange: p.prefix + "-jobs-exchange", Queue: p.prefix + "-jobs", Arches: []string{"x86_64"}, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		defer q.Close()
		for {
			d, err := q.Next(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.m[d.Job.MsgID] = append(c.m[d.Job.MsgID], d.Job)
			c.mu.Unlock()
			d.Ack()
		}
	}()
	return c
}

type jobsByMsg struct {
	mu   sync.Mutex
	m    map[string][]contract.Job
	done chan struct{}
}

func (c *jobsByMsg) of(id string) []contract.Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]contract.Job(nil), c.m[id]...)
}

// deadLetters takes what is in the dead-letter queue: message id → reason.
func (p poisonSetup) deadLetters(t *testing.T) map[string]string {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for {
		d, ok, err := ch.Get(p.sourceQueue()+".deadletter", true)
		if err != nil {
			t.Fatalf("reading the dead-letter queue: %v", err)
		}
		if !ok {
			return out
		}
		reason, _ := d.Headers[bus.ReasonHeader].(string)
		out[d.MessageId] = reason
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lineWriter keeps a process's output and the length of its longest line.
type lineWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	longest int
	partial int
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range b {
		if c == '\n' {
			w.longest = max(w.longest, w.partial)
			w.partial = 0
			continue
		}
		w.partial++
	}
	// Keep the start of long lines only: the output is for the failure message.
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), len(b)+1)
	for sc.Scan() {
		w.buf.WriteString(bus.Truncate(sc.Text(), 400) + "\n")
	}
	return len(b), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *lineWriter) maxLine() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(w.longest, w.partial)
}

// A `taskotron trigger` process, one message at a time (--workers 1), is
// given a build whose name is 5 MiB, a build whose jobs are too big for the
// job queue, and a normal build behind them: the normal build's job
// arrives, both others are in <queue>.deadletter with their reasons and
// none of their jobs is queued, the trigger keeps running and healthy, and
// no log line carries the huge fields.
func TestPoisonMessagesDoNotWedgeTheTrigger(t *testing.T) {
	p := newPoisonSetup(t)
	bin := filepath.Join(p.dir, "taskotron")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/taskotron-go/taskotron/cmd/taskotron").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rules := filepath.Join(p.dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(poisonRules), 0o644); err != nil {
		t.Fatal(err)
	}
	statusAddr := freeAddr(t)
	cmd := exec.Command(bin, "trigger", "--workers", "1")
	cmd.Env = append(os.Environ(),
		"TASKOTRON_DATA_DIR="+filepath.Join(p.dir, "data"),
		"TASKOTRON_AMQP_URL="+amqpURL(),
		"TASKOTRON_AMQP_QUEUE="+p.sourceQueue(),
		"TASKOTRON_AMQP_TOPICS="+p.prefix+".#",
		"TASKOTRON_AMQP_JOB_EXCHANGE="+p.prefix+"-jobs-exchange",
		"TASKOTRON_AMQP_JOB_QUEUE="+p.prefix+"-jobs",
		"TASKOTRON_TRIGGER_RULES="+rules,
		"TASKOTRON_TRIGGER_ARCHES=x86_64",
		"TASKOTRON_STATUS_LISTEN="+statusAddr,
	)
	logs := &lineWriter{}
	cmd.Stdout, cmd.Stderr = logs, logs
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("POISON_LOGS") != "" {
			t.Logf("trigger output:\n%s", logs)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
	}()
	healthz := func() (int, string) {
		resp, err := http.Get("http://" + statusAddr + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	waitUntil(t, "the trigger to serve /healthz", 60*time.Second, func() bool { code, _ := healthz(); return code == http.StatusOK })

	jobs := p.collectJobs(t)
	poison := p.build("poison", strings.Repeat("a", 5<<20), nil)
	hugeJobs := p.build("huge-jobs", "bigjobs", map[string]any{"blob": strings.Repeat("b", 2<<20)})
	normal := p.build("normal", "normal", nil)
	p.publish(t, poison, hugeJobs, normal)

	waitUntil(t, "the normal build's job behind the poison messages", 60*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the trigger exited: %v\n%s", err, logs)
		default:
		}
		return len(jobs.of(normal.ID)) == 1
	})
	if j := jobs.of(normal.ID)[0]; j.TaskName != "rpmlint" || j.Item != "normal-1.0-1.fc40" {
		t.Errorf("normal build's job: %+v", j)
	}
	var dead map[string]string
	waitUntil(t, "both poison messages in the dead-letter queue", 30*time.Second, func() bool {
		for k, v := range p.deadLetters(t) {
			if dead == nil {
				dead = map[string]string{}
			}
			dead[k] = v
		}
		return len(dead) >= 2
	})
	if r := dead[poison.ID]; !strings.Contains(r, `field "name" is 5242880 bytes long`) || len(r) > 1024 {
		t.Errorf("poison message's reason (%d bytes): %.300q", len(r), r)
	}
	if r := dead[hugeJobs.ID]; !strings.Contains(r, "job queue refused") || !strings.Contains(r, "check-bbbb") || len(r) > 1024 {
		t.Errorf("huge-jobs message's reason (%d bytes): %.300q", len(r), r)
	}
	if len(dead) != 2 {
		t.Errorf("dead letters: %v", dead)
	}
	// The trigger keeps going: a build published now gets its job too.
	after := p.build("after", "after", nil)
	p.publish(t, after)
	waitUntil(t, "the job of a build published after the poison", 30*time.Second, func() bool { return len(jobs.of(after.ID)) == 1 })
	time.Sleep(time.Second) // a late job of the poison messages would show now
	if n := len(jobs.of(poison.ID)) + len(jobs.of(hugeJobs.ID)); n != 0 {
		t.Errorf("%d jobs of the poison messages were queued", n)
	}
	if code, body := healthz(); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if n := logs.maxLine(); n > 4096 {
		t.Errorf("a log line is %d bytes long", n)
	}
}

// flakyProxy forwards TCP connections to the broker until it is set down:
// then it cuts the open ones and refuses new ones, as a broker outage
// looks from the client, without touching the broker other tests use.
type flakyProxy struct {
	l       net.Listener
	target  string
	mu      sync.Mutex
	down    bool
	refused int
	conns   []net.Conn
}

func startProxy(t *testing.T) *flakyProxy {
	uri, err := amqp.ParseURI(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{l: l, target: net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port))}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.refused++
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close(); c.Close() }()
			go func() { io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); p.setDown(true) })
	return p
}

func (p *flakyProxy) url() string {
	uri, _ := amqp.ParseURI(amqpURL())
	host, port, _ := net.SplitHostPort(p.l.Addr().String())
	uri.Host = host
	fmt.Sscan(port, &uri.Port)
	return uri.String()
}

func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *flakyProxy) refusedConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

type outcomeLog struct {
	mu sync.Mutex
	m  map[string]MessageOutcome
}

func (o *outcomeLog) observe(out MessageOutcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]MessageOutcome{}
	}
	o.m[out.MsgID] = out
}

func (o *outcomeLog) of(id string) MessageOutcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[id]
}

// While the job queue's broker connection is down, a message's publish is
// retried, never dead-lettered: when the broker is back, its job is queued
// and the message acked.
func TestRelayBrokerOutageIsWaitedOutNotDeadLettered(t *testing.T) {
	p := newPoisonSetup(t)
	proxy := startProxy(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src, err := bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{URL: amqpURL(), Queue: p.sourceQueue(), Topics: []string{p.prefix + ".#"}, Prefetch: 10, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: proxy.url(), Exchange: p.prefix + "-jobs-exchange", Queue: p.prefix + "-jobs"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rules, err := ParseRules("poison rules", []byte(poisonRules), nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := p.collectJobs(t)
	var outcomes outcomeLog
	done := make(chan struct{})
	go func() {
		defer close(done)
		RelayWith(ctx, src, New(Options{Rules: rules}), q, RelayOptions{Workers: 1, OnOutcome: outcomes.observe})
	}()
	proxy.setDown(true)
	m := p.build("during-outage", "outage", nil)
	p.publish(t, m)
	waitUntil(t, "the relay to try publishing during the outage", 30*time.Second, func() bool { return proxy.refusedConns() >= 3 })
	if n := len(jobs.of(m.ID)); n != 0 {
		t.Fatalf("%d jobs got through while the broker was away", n)
	}
	if dl := p.deadLetters(t); len(dl) != 0 {
		t.Fatalf("dead-lettered during an outage: %v", dl)
	}
	proxy.setDown(false)
	waitUntil(t, "the job once the broker is back", 60*time.Second, func() bool { return len(jobs.of(m.ID)) == 1 })
	waitUntil(t, "the message acked", 10*time.Second, func() bool { return outcomes.of(m.ID).Outcome == OutcomeJobs })
	if dl := p.deadLetters(t); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
	cancel()
	<-done
}

// Tag events are fused and their jobs published together: when one job
// is refused, only the message it came from is set aside, and the other
// groups' jobs are queued.
func TestRelayFusedJobRefusedSetsOnlyItsMessageAside(t *testing.T) {
	p := newPoisonSetup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src, err := bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{URL: amqpURL(), Queue: p.sourceQueue(), Topics: []string{p.prefix + ".#"}, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	q, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: amqpURL(), Exchange: p.prefix + "-jobs-exchange", Queue: p.prefix + "-jobs"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rules, err := ParseRules("tag rules", []byte(`- when: {message_type: KojiTagChanged}
  do: [{tasks: [upgradepath]}]
- when: {message_type: KojiTagChanged, _msg.blob: {$exists: true}}
  do: [{tasks: ['check-${_msg.blob}']}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := p.collectJobs(t)
	var outcomes outcomeLog
	done := make(chan struct{})
	go func() {
		defer close(done)
		RelayWith(ctx, src, New(Options{Rules: rules, FuseDelay: 500 * time.Millisecond}), q, RelayOptions{Workers: 4, OnOutcome: outcomes.observe})
	}()
	tagMsg := func(id, tag string, more map[string]any) contract.Message {
		body := map[string]any{"tag": tag, "name": "foo", "version": "1", "release": "1.fc40", "instance": "primary"}
		for k, v := range more {
			body[k] = v
		}
		return contract.Message{ID: p.prefix + "-" + id, Topic: p.prefix + ".buildsys.tag", Body: body}
	}
	bad := tagMsg("bad", "f40-updates-pending", map[string]any{"blob": strings.Repeat("b", 2<<20)})
	good := tagMsg("good", "f41-updates-pending", nil)
	p.publish(t, bad, good)
	waitUntil(t, "the good tag's job", 30*time.Second, func() bool { return len(jobs.of(good.ID)) == 1 })
	waitUntil(t, "both messages done with", 30*time.Second, func() bool {
		return outcomes.of(good.ID).Outcome == OutcomeJobs && outcomes.of(bad.ID).Outcome == OutcomeRejected
	})
	dead := p.deadLetters(t)
	if r := dead[bad.ID]; !strings.Contains(r, "job queue refused") || len(dead) != 1 {
		t.Errorf("dead letters: %v", dead)
	}
	if j := jobs.of(good.ID)[0]; j.TaskName != "upgradepath" || j.Item != "f41-updates-pending" {
		t.Errorf("good tag's job: %+v", j)
	}
	cancel()
	<-done
}
