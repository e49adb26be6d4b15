package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
)

// These tests run a worker on both kinds of job queue, the on-disk one and
// the real RabbitMQ, and check that a job waiting for its retry after an
// infrastructure failure holds no slot, and loses nothing. They run in
// parallel, so their job uuids differ: a job starting kills what carries
// its uuid.

var queueKinds = []string{"disk", "amqp"}

// onEachQueueKind runs test once per queue kind, in parallel.
func onEachQueueKind(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range queueKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			test(t, kind)
		})
	}
}

func testAMQPURL() string {
	if u := os.Getenv("TASKOTRON_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// testQueue names one job queue; each worker opens it afresh, as a new
// worker process would.
type testQueue struct {
	Dir      string // the on-disk queue's folder
	URL      string // or RabbitMQ's
	Exchange string
	Prefix   string
}

func newTestQueue(t *testing.T, kind string) testQueue {
	t.Helper()
	if kind == "disk" {
		return testQueue{Dir: filepath.Join(t.TempDir(), "queue")}
	}
	conn, err := amqp.Dial(testAMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ at %s is needed (set TASKOTRON_TEST_AMQP): %v", testAMQPURL(), err)
	}
	conn.Close()
	prefix := fmt.Sprintf("test-retrywait-%d-%x", time.Now().UnixNano(), rand.Uint32())
	q := testQueue{URL: testAMQPURL(), Exchange: prefix + ".exchange", Prefix: prefix}
	t.Cleanup(func() {
		conn, err := amqp.Dial(q.URL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(prefix+".x86_64", false, false, false)
			ch.QueueDelete(prefix+".x86_64.host", false, false, false)
			ch.ExchangeDelete(q.Exchange, false, false)
		}
	})
	return q
}

// open connects as a worker would that holds prefetch jobs and runs
// running of them at once.
func (q testQueue) open(ctx context.Context, prefetch, running int) (bus.JobQueue, func(), error) {
	if q.Dir != "" {
		dq, err := bus.OpenDiskQueue(q.Dir)
		return dq, func() {}, err
	}
	aq, err := bus.OpenAMQPJobQueue(ctx, bus.AMQPJobQueueConfig{URL: q.URL, Exchange: q.Exchange, Queue: q.Prefix, Arches: []string{"x86_64"}, Prefetch: prefetch, Running: running})
	if err != nil {
		return nil, nil, err
	}
	return aq, func() { aq.Close() }, nil
}

func (q testQueue) mustOpen(t *testing.T, prefetch, running int) (bus.JobQueue, func()) {
	t.Helper()
	jq, closeQ, err := q.open(context.Background(), prefetch, running)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeQ)
	return jq, closeQ
}

// ready counts the jobs in the queue that any worker may take now.
func (q testQueue) ready(t *testing.T, jq bus.JobQueue) int {
	t.Helper()
	if q.Dir != "" {
		p, _ := jq.(*bus.DiskQueue).Len()
		return p
	}
	conn, err := amqp.Dial(q.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := ch.QueueDeclarePassive(q.Prefix+".x86_64", true, false, false, false, amqp.Table{"x-max-priority": int32(9)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

// infraDown makes the "download" task fail on infrastructure: Koji does
// not answer.
func infraDown(t *testing.T, s *stack) {
	t.Helper()
	s.kojiAt(kojiDown)
	s.addTask(t, "download", downloadFormula)
}

const (
	kojiDown        = "http://127.0.0.1:1/kojihub"
	downloadFormula = "name: download\nactions:\n  - koji: {action: download, koji_build: '${koji_build}', arch: [x86_64], target_dir: '${workdir}'}\n"
)

// done records the jobs a worker finished, and ends the worker's context
// after the expected number.
type done struct {
	mu     sync.Mutex
	events []doneEvent
	want   int
	cancel func()
	queue  bus.JobQueue
}

type doneEvent struct {
	UUID              string
	Attempt           int
	At                time.Time
	Pending, Inflight int // the disk queue's, when the job was done
}

func (d *done) onDone(j contract.Job, _ contract.Execution) {
	ev := doneEvent{UUID: j.UUID, Attempt: j.Attempt, At: time.Now()}
	if dq, ok := d.queue.(*bus.DiskQueue); ok {
		ev.Pending, ev.Inflight = dq.Len()
	}
	d.mu.Lock()
	d.events = append(d.events, ev)
	n := len(d.events)
	d.mu.Unlock()
	if n == d.want && d.cancel != nil {
		d.cancel()
	}
}

func (d *done) list() []doneEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]doneEvent{}, d.events...)
}

func (d *done) attempts() string {
	var b []string
	for _, e := range d.list() {
		b = append(b, fmt.Sprintf("%s#%d", e.UUID, e.Attempt))
	}
	return strings.Join(b, " ")
}

func runWorker(ctx context.Context, opts Options) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- New(opts).Run(ctx) }()
	return errc
}

// waitForFile waits until path exists and returns its modification time.
func waitForFile(t *testing.T, what, path string) time.Time {
	t.Helper()
	var mod time.Time
	waitFor(t, what, func() bool {
		fi, err := os.Stat(path)
		if err == nil {
			mod = fi.ModTime()
		}
		return err == nil
	})
	return mod
}

func (s *stack) expectStored(t *testing.T, uuid, outcome string) {
	t.Helper()
	if rs := s.stored(t, uuid); len(rs) != 1 || rs[0].Outcome != outcome {
		t.Errorf("%s: stored %+v, want one %s", uuid, rs, outcome)
	}
}

// With one slot, job A fails on infrastructure and waits out its backoff;
// job B, queued behind it, runs and finishes during that wait; then A's
// next attempt runs and ends. Each gets exactly one final result.
func TestWorkerRunsOtherJobsDuringARetryWait(t *testing.T) {
	onEachQueueKind(t, testRunsOtherJobsDuringARetryWait)
}

func testRunsOtherJobsDuringARetryWait(t *testing.T, kind string) {
	s := newStack(t)
	infraDown(t, s)
	tq := newTestQueue(t, kind)
	const retryWait = 3 * time.Second
	opts := Options{Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxAttempts: 2, RetryWait: retryWait}
	q, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	a, b := job(kind+"-wait-a", "download", "xchat-0.5-1.fc20"), job(kind+"-wait-b", "nvr-format", "xchat-0.5-1.fc20")
	if err := q.Publish(context.Background(), a, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &done{want: 2, cancel: cancel, queue: q}
	opts.Queue, opts.OnDone = q, rec.onDone
	errc := runWorker(ctx, opts)
	failed := waitForFile(t, "A's first attempt to end", filepath.Join(s.cfg.Runner.ArtifactsDir, a.UUID, "taskotron", "execution.json"))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := rec.attempts(); got != b.UUID+"#1 "+a.UUID+"#2" {
		t.Fatalf("finished %q, want B's first attempt, then A's second", got)
	}
	ev := rec.list()
	if d := ev[0].At.Sub(failed); d >= retryWait {
		t.Errorf("B finished %s after A's first attempt ended: it waited for A's retry (%s) instead of running meanwhile", d, retryWait)
	}
	if kind == "disk" && (ev[0].Pending != 0 || ev[0].Inflight != 1) {
		t.Errorf("when B was done the queue had %d pending, %d in flight; want A alone in flight (waiting, unacked)", ev[0].Pending, ev[0].Inflight)
	}
	s.expectStored(t, a.UUID, "ABORTED")
	s.expectStored(t, b.UUID, "PASSED")
	if n := tq.ready(t, q); n != 0 {
		t.Errorf("%d jobs left in the queue: %s", n, tq.leftovers(t))
	}
}

// leftovers describes the jobs still ready on an AMQP test queue (taking
// them), so that a failure says which job was left and how.
func (q testQueue) leftovers(t *testing.T) string {
	t.Helper()
	if q.Dir != "" {
		return "(on disk)"
	}
	conn, err := amqp.Dial(q.URL)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err.Error()
	}
	var out []string
	for {
		d, ok, err := ch.Get(q.Prefix+".x86_64", true)
		if err != nil || !ok {
			break
		}
		out = append(out, fmt.Sprintf("%s (redelivered %v)", d.Body, d.Redelivered))
	}
	return strings.Join(out, "; ")
}

// A worker stopped while A waits for its retry hands A back at once (B,
// running in the slot A gave up, finishes, as ShutdownGrace 0 says); a new
// worker runs A's next attempt, counted as the second.
func TestWorkerStoppedDuringARetryWaitHandsTheJobOver(t *testing.T) {
	onEachQueueKind(t, testStoppedDuringARetryWait)
}

func testStoppedDuringARetryWait(t *testing.T, kind string) {
	s := newStack(t)
	infraDown(t, s)
	s.addTask(t, "slow", slowFormula)
	tq := newTestQueue(t, kind)
	opts := Options{Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxAttempts: 2, RetryWait: time.Minute}
	q1, close1 := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	a, b := job(kind+"-stop-a", "download", "xchat-0.5-1.fc20"), job(kind+"-stop-b", "slow", "b-1-1")
	if err := q1.Publish(context.Background(), a, b); err != nil {
		t.Fatal(err)
	}
	ctx1, stop := context.WithCancel(context.Background())
	defer stop()
	first := &done{queue: q1}
	opts.Queue, opts.OnDone = q1, first.onDone
	errc := runWorker(ctx1, opts)
	waitForFile(t, "B to start while A waits for its retry", filepath.Join(s.cfg.Runner.ArtifactsDir, b.UUID, "started"))
	stop() // SIGTERM
	waitFor(t, "A to be handed back", func() bool { return tq.ready(t, q1) == 1 })
	if rs := s.stored(t, b.UUID); len(rs) != 0 {
		t.Errorf("A was handed back only after B finished")
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stopped worker did not return")
	}
	close1() // as the worker process does on its way out
	if got := first.attempts(); got != b.UUID+"#1" {
		t.Fatalf("the stopped worker finished %q, want B alone", got)
	}
	s.expectStored(t, b.UUID, "PASSED")
	if rs := s.stored(t, a.UUID); len(rs) != 0 {
		t.Fatalf("A reported before its attempts were used up: %+v", rs)
	}

	q2, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	ctx2, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second := &done{want: 1, cancel: cancel, queue: q2}
	opts.Queue, opts.OnDone = q2, second.onDone
	if err := <-runWorker(ctx2, opts); err != nil {
		t.Fatal(err)
	}
	if got := second.attempts(); got != a.UUID+"#2" {
		t.Fatalf("the new worker finished %q, want A's second attempt", got)
	}
	s.expectStored(t, a.UUID, "ABORTED")
	s.expectStored(t, b.UUID, "PASSED")
}

// A flood of infrastructure failures takes at most Concurrency+MaxWaiting
// jobs off the queue: with one slot and one place, X waits in the place, Y
// waits in the slot, and Z stays in the queue. When X's wait ends, Y moves
// to the place and gives its slot to Z.
func TestWorkerBoundsTheJobsWaitingForARetry(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	infraDown(t, s)
	const retryWait = 2 * time.Second
	x, y, z := job("flood-x", "download", "xchat-0.5-1.fc20"), job("flood-y", "download", "xchat-0.5-1.fc20"), job("flood-z", "nvr-format", "xchat-0.5-1.fc20")
	y.Attempt = 1 // delivered as the second attempt: it waits twice as long as X
	if err := s.queue.Publish(context.Background(), x, y, z); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := &done{want: 3, cancel: cancel, queue: s.queue}
	errc := runWorker(ctx, Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxWaiting: 1, MaxAttempts: 3, RetryWait: retryWait, OnDone: rec.onDone})
	artifacts := s.cfg.Runner.ArtifactsDir
	waitForFile(t, "X's first attempt to end", filepath.Join(artifacts, x.UUID, "taskotron", "execution.json"))
	waitForFile(t, "Y's attempt to end", filepath.Join(artifacts, y.UUID, "taskotron", "execution.json"))
	time.Sleep(300 * time.Millisecond)
	if p, f := s.queue.Len(); p != 1 || f != 2 {
		t.Errorf("with X and Y waiting: %d pending, %d in flight; want Z pending, X and Y held", p, f)
	}
	if _, err := os.Stat(filepath.Join(artifacts, z.UUID)); !os.IsNotExist(err) {
		t.Errorf("Z started although X and Y held the slot and the one place (%v)", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ev := rec.list()
	if len(ev) != 3 || ev[0].UUID != z.UUID || ev[0].Attempt != 1 {
		t.Fatalf("finished %q, want Z first", rec.attempts())
	}
	if ev[0].Pending != 1 || ev[0].Inflight != 1 {
		t.Errorf("when Z was done: %d pending, %d in flight; want X's next attempt pending and Y still waiting", ev[0].Pending, ev[0].Inflight)
	}
	for _, e := range ev[1:] {
		if e.Attempt != 3 {
			t.Errorf("%s ended after attempt %d, want 3", e.UUID, e.Attempt)
		}
	}
	s.expectStored(t, x.UUID, "ABORTED")
	s.expectStored(t, y.UUID, "ABORTED")
	s.expectStored(t, z.UUID, "PASSED")
}

// A worker killed (SIGKILL) while A waits for its retry loses nothing: a
// new worker gets A from the queue and runs its second attempt.
func TestWorkerKilledDuringARetryWait(t *testing.T) { onEachQueueKind(t, testKilledDuringARetryWait) }

func testKilledDuringARetryWait(t *testing.T, kind string) {
	s := newStack(t)
	infraDown(t, s)
	tq := newTestQueue(t, kind)
	q, _ := tq.mustOpen(t, 1, 1)
	a := job(kind+"-kill-a", "download", "xchat-0.5-1.fc20")
	if err := q.Publish(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(helperSpec{Queue: tq, DataDir: s.cfg.DataDir, Mirror: s.mirror, ResultsDB: s.url})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerHelperEnv+"="+string(spec))
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	var logText strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			logMu.Lock()
			logText.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), `"msg":"infrastructure failure, retrying later"`) {
				close(waiting)
			}
		}
		io.Copy(io.Discard, logs)
	}()
	select {
	case <-waiting:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("the worker process never waited for a retry:\n%s", logText.String())
	}
	time.Sleep(100 * time.Millisecond) // into the wait
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	opts := Options{Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxAttempts: 2, RetryWait: time.Minute}
	q2, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &done{want: 1, cancel: cancel, queue: q2}
	opts.Queue, opts.OnDone = q2, rec.onDone
	if err := <-runWorker(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if got := rec.attempts(); got != a.UUID+"#2" {
		t.Fatalf("the new worker finished %q, want A's second attempt", got)
	}
	s.expectStored(t, a.UUID, "ABORTED")
}

// A worker on RabbitMQ that holds a job it has not started (here its queue
// is told it may run all it holds, so the broker hands it Y ahead of time)
// hands that job back at once when it stops, with its count unchanged, and
// finishes the one it runs.
func TestWorkerStoppingOnRabbitMQHandsBackJobsItNeverStarted(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	tq := newTestQueue(t, "amqp")
	opts := Options{Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxWaiting: 1}
	q1, close1 := tq.mustOpen(t, opts.Prefetch(), opts.Prefetch())
	x, y := job("held-x", "slow", "a-1-1"), job("held-y", "nvr-format", "xchat-0.5-1.fc20")
	if err := q1.Publish(context.Background(), x, y); err != nil {
		t.Fatal(err)
	}
	ctx1, stop := context.WithCancel(context.Background())
	defer stop()
	first := &done{queue: q1}
	opts.Queue, opts.OnDone = q1, first.onDone
	errc := runWorker(ctx1, opts)
	waitForFile(t, "X to start", filepath.Join(s.cfg.Runner.ArtifactsDir, x.UUID, "started"))
	if n := tq.ready(t, q1); n != 0 {
		t.Fatalf("%d jobs ready in the queue; want Y taken ahead by the worker's prefetch", n)
	}
	stop()
	waitFor(t, "Y to be handed back", func() bool { return tq.ready(t, q1) == 1 })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	close1()
	if got := first.attempts(); got != "held-x#1" {
		t.Fatalf("the stopped worker finished %q, want X alone", got)
	}
	q2, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	ctx2, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second := &done{want: 1, cancel: cancel, queue: q2}
	opts.Queue, opts.OnDone = q2, second.onDone
	if err := <-runWorker(ctx2, opts); err != nil {
		t.Fatal(err)
	}
	if got := second.attempts(); got != "held-y#1" {
		t.Fatalf("the new worker finished %q, want Y's first attempt (it never ran before)", got)
	}
	s.expectStored(t, x.UUID, "PASSED")
	s.expectStored(t, y.UUID, "PASSED")
}

// A worker on RabbitMQ takes only the jobs it runs: while it runs a slow
// job, the next job stays in the queue, and an idle worker takes it.
func TestWorkerOnRabbitMQTakesNoJobAhead(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	tq := newTestQueue(t, "amqp")
	opts := Options{Runner: s.runner, Reporter: s.reporter, Concurrency: 1, MaxWaiting: 1}
	q1, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	x, y := job("busy-x", "slow", "a-1-1"), job("busy-y", "nvr-format", "xchat-0.5-1.fc20")
	if err := q1.Publish(context.Background(), x, y); err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	first := &done{queue: q1}
	opts.Queue, opts.OnDone = q1, first.onDone
	errc1 := runWorker(ctx1, opts)
	waitForFile(t, "X to start", filepath.Join(s.cfg.Runner.ArtifactsDir, x.UUID, "started"))
	time.Sleep(200 * time.Millisecond) // time for the broker to hand out more, if it would
	if n := tq.ready(t, q1); n != 1 {
		t.Fatalf("%d jobs ready in the queue while X runs; want Y left for another worker", n)
	}
	q2, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	second := &done{want: 1, cancel: cancel2, queue: q2}
	opts2 := opts
	opts2.Queue, opts2.OnDone = q2, second.onDone
	if err := <-runWorker(ctx2, opts2); err != nil {
		t.Fatal(err)
	}
	if got := second.attempts(); got != "busy-y#1" {
		t.Fatalf("the idle worker finished %q, want Y", got)
	}
	stop1()
	if err := <-errc1; err != nil {
		t.Fatal(err)
	}
	s.expectStored(t, x.UUID, "PASSED")
	s.expectStored(t, y.UUID, "PASSED")
}

// The worker process of TestWorkerKilledDuringARetryWait is this test
// binary, run with workerHelperEnv set to a helperSpec.
const workerHelperEnv = "TASKOTRON_TEST_WORKER_HELPER"

type helperSpec struct {
	Queue     testQueue
	DataDir   string
	Mirror    string
	ResultsDB string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerHelperEnv); spec != "" {
		os.Exit(helperWorker(spec))
	}
	os.Exit(m.Run())
}

// helperWorker runs a worker as newStack and infraDown set one up, with a
// long retry wait, logging JSON to stderr, until it is killed.
func helperWorker(raw string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	fail := func(err error) int { log.Error("helper worker", "err", err); return 1 }
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fail(err)
	}
	cfg := config.Default()
	cfg.DataDir = spec.DataDir
	cfg.Runner.ArtifactsDir = filepath.Join(spec.DataDir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(spec.DataDir, "work")
	cfg.Koji.URL, cfg.Koji.Retries = kojiDown, 0
	co, err := checkout.New(checkout.Options{Mirrors: []string{spec.Mirror}, CacheDir: filepath.Join(spec.DataDir, "cache")})
	if err != nil {
		return fail(err)
	}
	rep, err := reporter.New(reporter.Options{ResultsDBURL: spec.ResultsDB, SpoolDir: filepath.Join(spec.DataDir, "helper-spool")})
	if err != nil {
		return fail(err)
	}
	opts := Options{Runner: runner.New(runner.Options{Config: cfg, Checkout: co, Log: log}), Reporter: rep, Log: log, Concurrency: 1, MaxAttempts: 2, RetryWait: time.Minute}
	q, closeQ, err := spec.Queue.open(context.Background(), opts.Prefetch(), opts.Concurrency)
	if err != nil {
		return fail(err)
	}
	defer closeQ()
	opts.Queue = q
	if err := New(opts).Run(context.Background()); err != nil {
		return fail(err)
	}
	return 0
}
