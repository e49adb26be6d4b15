package worker

import (
	"context"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// While a job waits out its retry backoff, the tracker lists it as waiting
// with the time of its next attempt, and no longer as running; once it is
// done, nothing is held and its outcome is counted.
func TestTrackerShowsARetryWait(t *testing.T) {
	s := newStack(t)
	infraDown(t, s)
	tq := newTestQueue(t, "disk")
	const retryWait = 3 * time.Second
	tr := NewTracker(s.runner)
	opts := Options{Runner: s.runner, Reporter: tr.Reporter(s.reporter), Concurrency: 1, MaxAttempts: 2, RetryWait: retryWait,
		OnRetryWait: tr.RetryWait}
	q, _ := tq.mustOpen(t, opts.Prefetch(), opts.Concurrency)
	a := job("tracked-wait-a", "download", "xchat-0.5-1.fc20")
	if err := q.Publish(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &done{want: 1, cancel: cancel, queue: q}
	opts.Queue = tr.Queue(q)
	opts.OnDone = func(j contract.Job, e contract.Execution) { tr.Done(j, e); rec.onDone(j, e) }
	started := time.Now()
	errc := runWorker(ctx, opts)

	deadline := time.Now().Add(30 * time.Second)
	var snap WorkerSnapshot
	for {
		snap = tr.Snapshot()
		if len(snap.Waiting) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(snap.Waiting) != 1 || len(snap.Running) != 0 {
		t.Fatalf("during the backoff: running %+v, waiting %+v; want A waiting alone", snap.Running, snap.Waiting)
	}
	w := snap.Waiting[0]
	if w.UUID != a.UUID || w.State != "waiting_retry" || w.RetryAt == nil || w.RetryAt.Before(started.Add(retryWait)) || w.RetryAt.After(time.Now().Add(retryWait)) {
		t.Errorf("waiting job %+v: want A, waiting_retry, its next attempt %s after its failure", w, retryWait)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	snap = tr.Snapshot()
	if len(snap.Running)+len(snap.Waiting) != 0 || snap.Finished["NOT_OK"] != 1 || snap.Retries != 1 || snap.Attempts != 2 {
		t.Errorf("after the job: %+v; want nothing held, one NOT_OK, one retry, two attempts", snap)
	}
}
