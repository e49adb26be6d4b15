package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// These tests run the worker on plain data: an in-memory queue, a runner
// that answers from a script, a reporter that keeps what it is given.

// memQueue is an in-memory job queue that counts attempts as the on-disk
// queue does: every delivery of a job is one more attempt.
type memQueue struct {
	mu      sync.Mutex
	pending []contract.Job
	taken   int
	sealed  bool
	acked   []contract.Job
	wake    chan struct{}
}

func newMemQueue(jobs ...contract.Job) *memQueue {
	return &memQueue{pending: jobs, wake: make(chan struct{}, 1)}
}

func (q *memQueue) Publish(_ context.Context, jobs ...contract.Job) error {
	q.mu.Lock()
	q.pending = append(q.pending, jobs...)
	q.mu.Unlock()
	q.poke()
	return nil
}

func (q *memQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *memQueue) Next(ctx context.Context) (bus.JobDelivery, error) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			job := q.pending[0]
			q.pending = q.pending[1:]
			q.taken++
			q.mu.Unlock()
			job.Attempt++
			settle := func(requeue bool) func() error {
				return func() error {
					q.mu.Lock()
					q.taken--
					if requeue {
						q.pending = append(q.pending, job)
					} else {
						q.acked = append(q.acked, job)
					}
					q.mu.Unlock()
					q.poke()
					return nil
				}
			}
			return bus.NewJobDelivery(job, settle(false), settle(true)), nil
		}
		if q.sealed && q.taken == 0 {
			q.mu.Unlock()
			return bus.JobDelivery{}, bus.ErrDrained
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return bus.JobDelivery{}, ctx.Err()
		}
	}
}

func (q *memQueue) seal() {
	q.mu.Lock()
	q.sealed = true
	q.mu.Unlock()
	q.poke()
}

// scriptRunner answers each attempt of a job from a script: the i-th run
// of a job gets script(job, i).
type scriptRunner struct {
	mu     sync.Mutex
	runs   map[string]int
	script func(job contract.Job, run int) (contract.Execution, error)
	action map[string]string
}

func (r *scriptRunner) RunJob(ctx context.Context, job contract.Job) (contract.Execution, error) {
	r.mu.Lock()
	r.runs[job.UUID]++
	n := r.runs[job.UUID]
	r.mu.Unlock()
	return r.script(job, n)
}

func (r *scriptRunner) Action(uuid string) string     { return "" }
func (r *scriptRunner) LastAction(uuid string) string { return r.action[uuid] }

func (r *scriptRunner) count(uuid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[uuid]
}

type keptReporter struct {
	mu    sync.Mutex
	execs []contract.Execution
	fail  int // the first fail reports fail
}

func (r *keptReporter) Report(_ context.Context, exec contract.Execution) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("ResultsDB said no")
	}
	r.execs = append(r.execs, exec)
	return nil
}

func passed(job contract.Job) contract.Execution {
	return contract.Execution{UUID: job.UUID, ExecutionStatus: contract.ExecutionOK, Item: job.Item, ItemType: job.ItemType, TaskName: job.TaskName,
		Results: []contract.Result{{Item: job.Item, Type: job.ItemType, CheckName: job.TaskName, Outcome: contract.Passed}}}
}

func plainJob(uuid string) contract.Job {
	return contract.Job{UUID: uuid, Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64"}
}

func TestPlainWorkerRetriesAnInfrastructureFailureThenReportsOnce(t *testing.T) {
	q := newMemQueue(plainJob("j-1"))
	run := &scriptRunner{runs: map[string]int{}, script: func(job contract.Job, n int) (contract.Execution, error) {
		if n == 1 {
			exec := contract.Execution{UUID: job.UUID, ExecutionStatus: contract.ExecutionNotOK, Status: "koji: connection refused", Infra: true, Outcome: contract.Aborted}
			return exec, nil
		}
		return passed(job), nil
	}}
	rep := &keptReporter{}
	q.seal()
	if err := New(Options{Queue: q, Runner: run, Reporter: rep, RetryWait: time.Millisecond}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rep.execs) != 1 || rep.execs[0].ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("reported %+v, want one OK execution (the retry)", rep.execs)
	}
	// The retry goes back on the queue as the next attempt, and the failed
	// delivery is acked once that is stored.
	if run.count("j-1") != 2 || len(q.acked) != 2 || q.acked[1].Attempt != 2 {
		t.Errorf("ran %d times, acked %+v; want 2 runs, and attempt 2 acked after attempt 1", run.count("j-1"), q.acked)
	}
}

func TestPlainWorkerGivesUpWithCrashedAfterMaxAttempts(t *testing.T) {
	// A job delivered a fourth time: its earlier workers died mid-run.
	j := plainJob("j-dead")
	j.Attempt = 3
	q := newMemQueue(j)
	run := &scriptRunner{runs: map[string]int{}, action: map[string]string{"j-dead": "run rpmlint"},
		script: func(job contract.Job, n int) (contract.Execution, error) { return passed(job), nil }}
	rep := &keptReporter{}
	q.seal()
	if err := New(Options{Queue: q, Runner: run, Reporter: rep, MaxAttempts: 3}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if run.count("j-dead") != 0 {
		t.Errorf("a job past its attempts ran again")
	}
	if len(rep.execs) != 1 || len(rep.execs[0].Results) != 1 || rep.execs[0].Results[0].Outcome != contract.Crashed {
		t.Fatalf("reported %+v, want one CRASHED result", rep.execs)
	}
	if note := rep.execs[0].Results[0].Note; !strings.Contains(note, "gave up after 3 attempts") || !strings.Contains(note, `"run rpmlint"`) {
		t.Errorf("the reason %q does not say it gave up, and in which action", note)
	}
}

func TestPlainWorkerHandsBackAJobItCouldNotReport(t *testing.T) {
	q := newMemQueue(plainJob("j-2"))
	run := &scriptRunner{runs: map[string]int{}, script: func(job contract.Job, n int) (contract.Execution, error) { return passed(job), nil }}
	rep := &keptReporter{fail: 5} // every try of the first report fails
	q.seal()
	if err := New(Options{Queue: q, Runner: run, Reporter: rep, ReportWait: time.Millisecond}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Handed back, taken again and reported then: nothing lost.
	if len(rep.execs) != 1 || len(q.acked) != 1 || run.count("j-2") != 2 {
		t.Fatalf("reported %d, acked %d, ran %d times; want the job reported once after running again", len(rep.execs), len(q.acked), run.count("j-2"))
	}
}

func TestPlainWorkerHandsBackAnInterruptedJob(t *testing.T) {
	q := newMemQueue(plainJob("j-3"))
	started := make(chan struct{})
	run := &scriptRunner{runs: map[string]int{}, script: func(job contract.Job, n int) (contract.Execution, error) {
		close(started)
		time.Sleep(50 * time.Millisecond)
		return contract.Execution{UUID: job.UUID}, errors.New("run interrupted")
	}}
	rep := &keptReporter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- New(Options{Queue: q, Runner: run, Reporter: rep, ShutdownGrace: -1}).Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(rep.execs) != 0 || len(q.pending) != 1 || q.pending[0].UUID != "j-3" {
		t.Fatalf("reported %+v, queue %+v; want nothing reported and the job back in the queue", rep.execs, q.pending)
	}
}
