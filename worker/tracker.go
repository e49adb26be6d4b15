package worker

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// Tracker sees what a Worker holds, for /status and /metrics, by wrapping
// its queue and reporter: a job is held from the delivery to its ack or
// hand-back. Wire it as Options{Queue: t.Queue(q), Reporter:
// t.Reporter(rep), OnDone: t.Done, OnRetryWait: t.RetryWait}.
type Tracker struct {
	progress Progress

	mu   sync.Mutex
	held map[string]*held

	attempts  atomic.Int64
	handed    atomic.Int64
	retries   atomic.Int64
	finishedM sync.Mutex
	finished  map[string]int64 // by execution status / outcome
}

type held struct {
	job       contract.Job
	started   time.Time
	reporting bool
	retryAt   time.Time // set while the job waits for its next attempt
	count     int       // deliveries of this uuid held (a retry published while the old one is held)
}

// JobState is one job a worker holds.
type JobState struct {
	UUID     string    `json:"uuid"`
	Task     string    `json:"task"`
	Item     string    `json:"item"`
	ItemType string    `json:"item_type"`
	Arch     string    `json:"arch"`
	Attempt  int       `json:"attempt"`
	Started  time.Time `json:"started"`
	// State is running, reporting, or waiting_retry (its run ended with an
	// infrastructure failure and it waits out the backoff until RetryAt).
	State   string     `json:"state"`
	RetryAt *time.Time `json:"retry_at,omitempty"`
	// Action is the action the job's run is in, as the runner tells it.
	Action string `json:"action,omitempty"`
}

// WorkerSnapshot is what a worker holds and has done.
type WorkerSnapshot struct {
	Running  []JobState       `json:"running"`
	Waiting  []JobState       `json:"waiting"`
	Finished map[string]int64 `json:"finished"`
	Attempts int64            `json:"attempts"`
	// HandedBack counts jobs given back to the queue (interrupted, or not reported).
	HandedBack int64 `json:"handed_back"`
	// Retries counts jobs published again for a later attempt.
	Retries int64 `json:"retries"`
}

// NewTracker makes a Tracker; p (may be nil) tells the current action of a job.
func NewTracker(p Progress) *Tracker {
	return &Tracker{progress: p, held: map[string]*held{}, finished: map[string]int64{}}
}

// Queue wraps the worker's queue.
func (t *Tracker) Queue(q Queue) Queue { return &trackedQueue{q: q, t: t} }

// Reporter wraps the worker's reporter.
func (t *Tracker) Reporter(r Reporter) Reporter {
	if r == nil {
		return nil
	}
	return trackedReporter{r: r, t: t}
}

// RetryWait marks a held job as waiting for its next attempt; chain it
// into Options.OnRetryWait.
func (t *Tracker) RetryWait(job contract.Job, retryAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.held[job.UUID]; ok {
		h.retryAt = retryAt
	}
}

// Done counts a finished job by its execution's outcome; chain it into
// Options.OnDone.
func (t *Tracker) Done(job contract.Job, exec contract.Execution) {
	key := string(exec.ExecutionStatus)
	if key == "" {
		key = "unknown"
	}
	t.finishedM.Lock()
	t.finished[key]++
	t.finishedM.Unlock()
}

func (t *Tracker) take(job contract.Job) {
	t.attempts.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.held[job.UUID]; ok {
		h.count++
		return
	}
	t.held[job.UUID] = &held{job: job, started: time.Now(), count: 1}
}

func (t *Tracker) release(uuid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.held[uuid]; ok {
		if h.count--; h.count <= 0 {
			delete(t.held, uuid)
		}
	}
}

// Snapshot lists the jobs held, running first and then waiting, oldest first.
func (t *Tracker) Snapshot() WorkerSnapshot {
	t.mu.Lock()
	list := make([]held, 0, len(t.held))
	for _, h := range t.held {
		list = append(list, *h)
	}
	t.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].started.Before(list[j].started) })
	s := WorkerSnapshot{Running: []JobState{}, Waiting: []JobState{}, Finished: map[string]int64{},
		Attempts: t.attempts.Load(), HandedBack: t.handed.Load(), Retries: t.retries.Load()}
	for _, h := range list {
		j := h.job
		st := JobState{UUID: j.UUID, Task: j.TaskName, Item: j.Item, ItemType: j.ItemType, Arch: j.Arch, Attempt: j.Attempt, Started: h.started.UTC(), State: "running"}
		switch {
		case h.reporting:
			st.State = "reporting"
		case !h.retryAt.IsZero():
			st.State = "waiting_retry"
			at := h.retryAt.UTC()
			st.RetryAt = &at
		}
		if t.progress != nil && st.State == "running" {
			st.Action = t.progress.Action(j.UUID)
		}
		if st.State == "waiting_retry" {
			s.Waiting = append(s.Waiting, st)
		} else {
			s.Running = append(s.Running, st)
		}
	}
	t.finishedM.Lock()
	for k, v := range t.finished {
		s.Finished[k] = v
	}
	t.finishedM.Unlock()
	return s
}

type trackedQueue struct {
	q Queue
	t *Tracker
}

func (tq *trackedQueue) Publish(ctx context.Context, jobs ...contract.Job) error {
	err := tq.q.Publish(ctx, jobs...)
	if err == nil {
		tq.t.retries.Add(int64(len(jobs))) // a worker publishes only a job's next attempt
	}
	return err
}

func (tq *trackedQueue) Next(ctx context.Context) (bus.JobDelivery, error) {
	d, err := tq.q.Next(ctx)
	if err != nil {
		return d, err
	}
	job := d.Job
	if job.UUID == "" {
		job.UUID = JobUUID(job) // as the worker names it
	}
	tq.t.take(job)
	var once sync.Once
	done := func() { once.Do(func() { tq.t.release(job.UUID) }) }
	return bus.NewJobDelivery(d.Job,
		func() error { done(); return d.Ack() },
		func() error { done(); tq.t.handed.Add(1); return d.Nack() }).WithLost(d.Lost()), nil
}

// HoldExtra passes the worker's count of jobs held without running on to
// a queue that bounds the jobs it hands out.
func (tq *trackedQueue) HoldExtra(delta int) error {
	if h, ok := tq.q.(interface{ HoldExtra(int) error }); ok {
		return h.HoldExtra(delta)
	}
	return nil
}

// StopConsuming passes the worker's stop on to a queue that takes jobs ahead.
func (tq *trackedQueue) StopConsuming() error {
	if c, ok := tq.q.(interface{ StopConsuming() error }); ok {
		return c.StopConsuming()
	}
	return nil
}

type trackedReporter struct {
	r Reporter
	t *Tracker
}

func (tr trackedReporter) Report(ctx context.Context, exec contract.Execution) error {
	tr.t.mu.Lock()
	if h, ok := tr.t.held[exec.UUID]; ok {
		h.reporting = true
	}
	tr.t.mu.Unlock()
	return tr.r.Report(ctx, exec)
}
