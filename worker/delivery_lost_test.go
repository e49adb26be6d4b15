package worker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
)

// cutProxy forwards TCP to RabbitMQ until cut: then it closes every
// connection and refuses new ones, as a network partition or a broker
// restart does to one worker.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.cutAll() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// host is a worker's own machine: its folders, runner and spool, sharing
// only the task mirror and ResultsDB with the others.
func newHost(t *testing.T, s *stack) (*runner.Runner, *reporter.Reporter) {
	t.Helper()
	dir := t.TempDir()
	cfg := s.cfg
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	// Unsandboxed: the test's tasks mark their progress in a folder the
	// test reads, which no sandbox shows.
	cfg.Runner.Sandbox = "off"
	co, err := checkout.New(checkout.Options{Mirrors: []string{s.mirror}, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := reporter.New(reporter.Options{ResultsDBURL: s.url, SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	return runner.New(runner.Options{Config: cfg, Checkout: co}), rep
}

// A worker whose broker connection goes while it runs a job stops the
// run: the broker hands the job out again, and a run going on would race
// that one. Found by the chaos soak (a broker restart, runner.max_attempts
// 1): the redelivered job gave up with a CRASHED result on one worker
// while the first run went on on another and stored PASSED beside it.
func TestRunStopsWhenItsDeliveryIsLost(t *testing.T) {
	s := newStack(t)
	// Unsandboxed: the task leaves its marks in a folder of the test's,
	// which no sandbox shows.
	s.cfg.Runner.Sandbox = "off"
	marks := t.TempDir()
	s.addTask(t, "slowmark", `name: slowmark
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'echo start >> "$$0/log"; sleep 3; echo end >> "$$0/log"; printf "TAP version 13\n1..1\nok 1 - slowmark\n"', "`+marks+`"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`)
	q := newTestQueue(t, "amqp")
	proxy := startCutProxy(t, strings.TrimSuffix(strings.TrimPrefix(q.URL, "amqp://guest:guest@"), "/"))
	viaProxy := q
	viaProxy.URL = "amqp://guest:guest@" + proxy.l.Addr().String() + "/"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, _ := q.mustOpen(t, 1, 1)
	j := contract.Job{UUID: q.Prefix + "-job", TaskName: "slowmark", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}
	if err := pub.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}

	// Worker A, on a host whose network to the broker is about to go.
	runA, repA := newHost(t, s)
	qa, _ := viaProxy.mustOpen(t, 1, 1)
	a := New(Options{Queue: qa, Runner: runA, Reporter: repA, Stored: repA.Stored, MaxAttempts: 1})
	aDone := make(chan struct{})
	go func() { defer close(aDone); a.Run(ctx) }()
	log := func() string { raw, _ := os.ReadFile(filepath.Join(marks, "log")); return string(raw) }
	waitFor(t, "worker A to start the job", func() bool { return strings.Contains(log(), "start") })
	proxy.cutAll()

	// Worker B, elsewhere, gets the job again: over its one attempt, it
	// gives up with a CRASHED result.
	runB, repB := newHost(t, s)
	qb, _ := q.mustOpen(t, 1, 1)
	b := New(Options{Queue: qb, Runner: runB, Reporter: repB, Stored: repB.Stored, MaxAttempts: 1})
	go b.Run(ctx)
	waitFor(t, "worker B to give up on the job", func() bool { return len(s.stored(t, j.UUID)) > 0 })
	time.Sleep(4 * time.Second) // A's run, had it gone on, would have ended and reported by now
	rs := s.stored(t, j.UUID)
	if len(rs) != 1 || rs[0].Outcome != "CRASHED" {
		var got []string
		for _, r := range rs {
			got = append(got, r.Outcome+" "+r.Testcase)
		}
		t.Fatalf("stored %v, want one CRASHED result: worker A's run went on after its delivery was lost (task log: %q)", got, log())
	}
	if strings.Contains(log(), "end") {
		t.Fatalf("worker A's run went on after its delivery was lost (task log: %q)", log())
	}
	if n := q.ready(t, pub); n != 0 {
		t.Fatalf("%d jobs left ready in the queue: worker A handed the lost job back as well", n)
	}
	cancel()
	<-aDone
}
