// Package worker is the queue and retry policy around a runner: it takes
// jobs from a job queue, runs them, reports their results and acks them;
// retries infrastructure failures with backoff, gives up with a CRASHED
// result after the maximum attempts, hands jobs back when it stops. It
// depends on small interfaces (Queue, Runner, Reporter) so that it runs on
// plain data in tests; service.go builds the worker role from the
// configuration. It may import bus, contract, results, status and, in
// service.go only, runner, reporter and config.
package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// Queue is where the worker takes jobs from, and where it puts a job's
// next attempt after an infrastructure failure.
type Queue interface {
	Next(ctx context.Context) (bus.JobDelivery, error)
	Publish(ctx context.Context, jobs ...contract.Job) error
}

// Runner runs one job to its execution. It returns an error only when ctx
// ended first (the worker is stopping): the execution then means nothing.
type Runner interface {
	RunJob(ctx context.Context, job contract.Job) (contract.Execution, error)
}

// Progress is a Runner that tells what a job is doing: the action a running
// execution is in, and the one its last run started (when its worker died).
type Progress interface {
	Action(uuid string) string
	LastAction(uuid string) string
}

// Reporter delivers an execution's results (to ResultsDB, or a durable
// spool). It must be idempotent per execution uuid: a job that runs again
// after its worker died is reported again.
type Reporter interface {
	Report(ctx context.Context, exec contract.Execution) error
}

// Observer hears where each job is, for execution tracking: the state
// changes the central server records.
type Observer interface {
	// Started: an attempt of the job begins to run here.
	Started(job contract.Job)
	// RetryWaiting: the attempt failed on infrastructure; the next is due at.
	RetryWaiting(job contract.Job, at time.Time, reason string)
	// Requeued: the job is back in the queue; attempt is its next one.
	Requeued(job contract.Job, attempt int, reason string)
	// Done: the job ended, reported and acked.
	Done(job contract.Job, exec contract.Execution)
}

// Options configure a Worker.
type Options struct {
	Queue    Queue
	Runner   Runner
	Reporter Reporter
	// Concurrency is how many jobs run at once (default 1).
	Concurrency int
	// MaxAttempts: a job delivered more often than this (its earlier runs
	// crashed or kept failing on infrastructure) is not run again but gets a
	// CRASHED result with the reason. 0 means 3.
	MaxAttempts int
	Log         *slog.Logger
	// Observer, when set, hears every job's state changes.
	Observer Observer
	// Stored, when set, says whether results of an execution are stored
	// already (in ResultsDB, or reported through this worker's spool). A
	// job over its attempts whose results are stored is acked without a
	// CRASHED result: an earlier attempt reported them and died before its
	// ack, and a CRASHED result beside them would contradict them (or,
	// when that attempt had given up, repeat it).
	Stored func(ctx context.Context, uuid string) (bool, error)
	// OnDone is called after a job was reported and acked, from the
	// job's goroutine (concurrently when Concurrency > 1).
	OnDone func(contract.Job, contract.Execution)
	// OnRetryWait is called when a job's run ended with an infrastructure
	// failure and the job starts waiting until retryAt for its next attempt.
	OnRetryWait func(job contract.Job, retryAt time.Time)
	// ShutdownGrace is how long running jobs may go on once the context
	// ends; then they are stopped and handed back to the queue. 0 means
	// they finish (bounded by the job timeout); negative hands them back at once.
	ShutdownGrace time.Duration
	// RetryWait is the first pause before an infrastructure failure is
	// retried (doubling per attempt, at most 5 minutes); 0 means 5 s.
	RetryWait time.Duration
	// ReportWait is the first pause before a failed report is tried again
	// (doubling, five tries, then the job is handed back); 0 means 1 s.
	ReportWait time.Duration
	// MaxWaiting is how many jobs may wait out that pause without holding
	// one of the Concurrency slots, so that other jobs run meanwhile; a
	// job failing while all are taken waits in its slot, so a flood of
	// infrastructure failures holds at most Concurrency+MaxWaiting jobs.
	// 0 means Concurrency.
	MaxWaiting int
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.RetryWait <= 0 {
		o.RetryWait = 5 * time.Second
	}
	if o.ReportWait <= 0 {
		o.ReportWait = time.Second
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = o.Concurrency
	}
	return o
}

// Prefetch is how many jobs the worker holds unacked at most: one per slot
// plus the jobs waiting for a retry. A queue that bounds unacked deliveries
// (AMQP's prefetch) must allow this many, or a waiting job would keep the
// job meant for its free slot at the broker.
func (o Options) Prefetch() int {
	o = o.withDefaults()
	return o.Concurrency + o.MaxWaiting
}

// Worker takes jobs from a queue, runs them and reports their results. A
// job is acked only after its results were reported or spooled, so a worker
// that dies loses nothing: the queue hands the job to another worker.
type Worker struct {
	opts Options
	log  *slog.Logger

	// waiting holds a token per job waiting for its retry without a slot.
	waiting chan struct{}

	mu      sync.Mutex
	running map[string]bool // uuids of the jobs running (or waiting) here
}

// New makes a Worker.
func New(opts Options) *Worker {
	opts = opts.withDefaults()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{opts: opts, log: log, running: map[string]bool{}, waiting: make(chan struct{}, opts.MaxWaiting)}
}

// Run consumes jobs until ctx ends or the queue is drained (bus.ErrDrained),
// then waits for the running jobs as ShutdownGrace says and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	if w.opts.Queue == nil || w.opts.Runner == nil {
		return errors.New("worker needs a queue and a runner")
	}
	// Running jobs outlive ctx by the grace period.
	jobCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(nil)
	slots := make(chan struct{}, w.opts.Concurrency)
	var wg sync.WaitGroup
	var drained bool
	failures := 0
	if c, ok := w.opts.Runner.(orphanKiller); ok {
		if n := c.KillOrphans(); n > 0 {
			w.log.Warn("killed task processes that a dead worker left running", "count", n)
		}
	}
	w.log.Info("worker started", "concurrency", w.opts.Concurrency, "max_attempts", w.opts.MaxAttempts, "max_waiting", w.opts.MaxWaiting)
loop:
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		d, err := w.opts.Queue.Next(ctx)
		if err != nil {
			<-slots
			if errors.Is(err, bus.ErrDrained) {
				drained = true
				break loop
			}
			if ctx.Err() != nil {
				break loop
			}
			failures++
			wait := backoff(time.Second, failures, time.Minute)
			w.log.Error("job queue", "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				break loop
			}
			continue
		}
		failures = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := true
			freeSlot := func() { // only ever called from this goroutine
				if held {
					held = false
					<-slots
				}
			}
			defer freeSlot()
			w.handle(ctx, jobCtx, d, freeSlot)
		}()
	}
	if c, ok := w.opts.Queue.(consumerStopper); ok {
		// Before the jobs waiting for a retry are handed back: they go to
		// other workers, not into this one's prefetch.
		if err := c.StopConsuming(); err != nil {
			w.log.Warn("job queue: stopping the consumer", "err", err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	switch {
	case drained:
		<-done
	case w.opts.ShutdownGrace < 0:
		stopJobs(errors.New("worker stopping"))
		<-done
	case w.opts.ShutdownGrace == 0:
		w.log.Info("worker stopping: waiting for running jobs")
		<-done
	default:
		w.log.Info("worker stopping: waiting for running jobs", "grace", w.opts.ShutdownGrace)
		select {
		case <-done:
		case <-time.After(w.opts.ShutdownGrace):
			stopJobs(errors.New("worker stopping: grace period over"))
			<-done
		}
	}
	w.log.Info("worker stopped")
	return nil
}

// errDeliveryLost ends a run whose delivery the queue lost.
var errDeliveryLost = errors.New("the job's delivery was lost")

// orphanKiller is a runner that can kill the task processes a dead worker
// left running.
type orphanKiller interface {
	KillOrphans() int
}

// consumerStopper is a queue that takes jobs ahead of Next (AMQP's
// prefetch) and can stop that, handing those jobs back.
type consumerStopper interface {
	StopConsuming() error
}

// handle runs one job to its end: reported and acked, retried later, or
// handed back. ctx is the job's own; stop ends when the worker is asked to
// stop, which also ends a wait before a retry. freeSlot gives the job's
// slot to the next job early.
func (w *Worker) handle(stop, ctx context.Context, d bus.JobDelivery, freeSlot func()) {
	job := d.Job
	if job.UUID == "" {
		// Every delivery of this job must run under one uuid, or a
		// redelivered job would be reported twice.
		job.UUID = JobUUID(job)
	}
	log := w.log.With("uuid", job.UUID, "task", job.TaskName, "item", job.Item, "arch", job.Arch, "attempt", job.Attempt)
	// A duplicate of a job running here (a retry published just before a
	// crash) would share its folders and kill its processes. The running
	// one acks or hands back the job itself, so the duplicate can go.
	w.mu.Lock()
	dup := w.running[job.UUID]
	w.running[job.UUID] = true
	w.mu.Unlock()
	if dup {
		log.Warn("a delivery of a job that is running here already; dropped")
		if err := d.Ack(); err != nil {
			log.Error("ack of the duplicate failed", "err", err)
		}
		return
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.running, job.UUID)
			w.mu.Unlock()
		})
	}
	defer release()
	// A job handed back may come straight back here: it is no duplicate.
	orig := d
	d = bus.NewJobDelivery(orig.Job, orig.Ack, func() error { release(); return orig.Nack() }).WithLost(orig.Lost())
	if job.Attempt > w.opts.MaxAttempts {
		stored, err := w.storedBefore(ctx, job, log)
		if err != nil {
			log.Error("job over its attempts, and whether an earlier attempt reported cannot be told; handing it back", "err", err)
			_ = d.Nack()
			return
		}
		if stored {
			log.Warn("job over its attempts, but an earlier attempt's results are stored (it died before its ack): acked without a CRASHED result")
			if err := d.Ack(); err != nil {
				log.Error("ack failed", "err", err)
			}
			return
		}
		reason := fmt.Sprintf("gave up after %d attempts: the job never finished (its worker died or was killed each time)", w.opts.MaxAttempts)
		if p, ok := w.opts.Runner.(Progress); ok {
			if a := p.LastAction(job.UUID); a != "" {
				reason += fmt.Sprintf("; the last attempt was in action %q", a)
			}
		}
		log.Error("job crashed too often", "reason", reason)
		w.finish(ctx, d, job, results.Crashed(job, reason), log)
		return
	}
	// The run and its retry wait end when the delivery is lost (the broker
	// connection closed): the broker hands the job out again, and a run
	// going on here would race that one, and report beside it.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	if lost := d.Lost(); lost != nil {
		go func() {
			select {
			case <-lost:
				stopRun(errDeliveryLost)
			case <-runCtx.Done():
			}
		}()
	}
	log.Info("job starting")
	obs := w.opts.Observer
	if obs != nil {
		obs.Started(job)
	}
	exec, err := w.runJob(runCtx, job)
	if err != nil && errors.Is(context.Cause(runCtx), errDeliveryLost) {
		log.Warn("job stopped: its delivery was lost while it ran (the broker connection closed), and the broker hands it out again")
		if obs != nil {
			obs.Requeued(job, job.Attempt+1, "its delivery was lost: the broker connection closed during the run")
		}
		return
	}
	if err != nil {
		log.Warn("job interrupted, handing it back", "err", err)
		if err := d.Nack(); err != nil {
			log.Error("handing the job back failed; the queue will redeliver it", "err", err)
		}
		if obs != nil {
			obs.Requeued(job, job.Attempt+1, "handed back: the worker stopped during the run")
		}
		return
	}
	if exec.ExecutionStatus == contract.ExecutionNotOK && exec.Infra && job.Attempt < w.opts.MaxAttempts {
		wait := backoff(w.opts.RetryWait, job.Attempt, 5*time.Minute)
		log.Warn("infrastructure failure, retrying later", "status", exec.Status, "retry_in", wait)
		if w.opts.OnRetryWait != nil {
			w.opts.OnRetryWait(job, time.Now().Add(wait))
		}
		if obs != nil {
			obs.RetryWaiting(job, time.Now().Add(wait), exec.Status)
		}
		// The job keeps its delivery through the wait, unacked: a worker
		// killed now loses nothing, and the attempt count survives on every
		// queue as it does for a crash mid-run. Republishing at once with a
		// not-before time would need delayed delivery from the broker,
		// which RabbitMQ offers only through TTL and dead-lettering, at
		// most once on classic queues. The price: the queue must let the
		// worker hold Prefetch jobs unacked, Concurrency of them running.
		slept, leave := w.waitForRetry(stop, runCtx, wait, freeSlot, log)
		defer leave()
		if !slept && errors.Is(context.Cause(runCtx), errDeliveryLost) {
			log.Warn("job's retry dropped: its delivery was lost (the broker connection closed), and the broker hands it out again")
			if obs != nil {
				obs.Requeued(job, job.Attempt+1, "its delivery was lost: the broker connection closed during the retry wait")
			}
			return
		}
		if !slept {
			log.Info("worker stopping: job handed back before its retry")
			_ = d.Nack()
			if obs != nil {
				obs.Requeued(job, job.Attempt+1, "handed back before its retry: the worker stopped")
			}
			return
		}
		// The next attempt may be taken here at once: it is no duplicate.
		release()
		// Publish the next attempt, then drop this one: the count survives
		// on every queue, and a duplicate left by a crash in between is
		// reported once (the reporter is idempotent per uuid).
		if err := w.opts.Queue.Publish(ctx, job); err != nil {
			log.Error("requeueing for a retry failed, handing the job back", "err", err)
			_ = d.Nack()
			return
		}
		if err := d.Ack(); err != nil {
			log.Error("ack after requeue", "err", err)
		}
		if obs != nil {
			obs.Requeued(job, job.Attempt+1, "retry after an infrastructure failure: "+exec.Status)
		}
		return
	}
	w.finish(ctx, d, job, exec, log)
}

// waitForRetry sits out the backoff before a job's next attempt; slept is
// false when the worker stops first (a stopping worker hands the job back
// at once). The job gives its slot to the next job as soon as it has one of
// the MaxWaiting places, at once or when one comes free; leave gives the
// place back, to be called once the job's delivery is settled so that the
// deliveries held never exceed Prefetch.
func (w *Worker) waitForRetry(stop, ctx context.Context, wait time.Duration, freeSlot func(), log *slog.Logger) (slept bool, leave func()) {
	placed := false
	leave = func() {
		if placed {
			w.holdExtra(-1, log)
			<-w.waiting
		}
	}
	var place chan struct{} // nil (never ready) once the job has a place
	select {
	case w.waiting <- struct{}{}:
		placed = true
		w.holdExtra(1, log)
		freeSlot()
	default:
		place = w.waiting
		log.Info("as many jobs wait for a retry as may; this one waits in its slot until a place comes free", "max_waiting", w.opts.MaxWaiting)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true, leave
		case <-stop.Done():
			return false, leave
		case <-ctx.Done():
			return false, leave
		case place <- struct{}{}:
			place, placed = nil, true
			w.holdExtra(1, log)
			freeSlot()
			log.Info("a retry place came free; the job gave its slot to the next job")
		}
	}
}

// holdExtra tells a queue that bounds the jobs handed to this worker (AMQP's
// prefetch) that a job waiting for its retry holds its delivery without
// running, so that the next job to run can come.
func (w *Worker) holdExtra(delta int, log *slog.Logger) {
	q, ok := w.opts.Queue.(interface{ HoldExtra(int) error })
	if !ok {
		return
	}
	if err := q.HoldExtra(delta); err != nil {
		log.Warn("the job queue did not take the new count of jobs held", "delta", delta, "err", err)
	}
}

// JobUUID is the uuid of a job that came without one: derived from what
// identifies it, so that every delivery of the job gets the same.
func JobUUID(j contract.Job) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{j.MsgID, j.TaskName, j.Item, j.ItemType, j.Arch, j.Created.UTC().Format(time.RFC3339Nano)}, "\x00")))
	return "job-" + hex.EncodeToString(sum[:16])
}

// runJob runs the job, turning a panic into a CRASHED execution.
func (w *Worker) runJob(ctx context.Context, job contract.Job) (exec contract.Execution, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("runner panicked", "uuid", job.UUID, "panic", p, "stack", string(debug.Stack()))
			exec, err = results.Crashed(job, fmt.Sprintf("runner crashed: %v", p)), nil
		}
	}()
	return w.opts.Runner.RunJob(ctx, job)
}

// storedBefore asks Stored, retrying as finish retries a report.
func (w *Worker) storedBefore(ctx context.Context, job contract.Job, log *slog.Logger) (bool, error) {
	if w.opts.Stored == nil {
		return false, nil
	}
	var err error
	for try := 1; try <= 5; try++ {
		var stored bool
		if stored, err = w.opts.Stored(ctx, job.UUID); err == nil {
			return stored, nil
		}
		log.Warn("cannot tell whether the job's results are stored", "err", err, "try", try)
		if !sleep(ctx, backoff(w.opts.ReportWait, try, 30*time.Second)) {
			break
		}
	}
	return false, err
}

// finish reports the execution and acks the job once that worked.
func (w *Worker) finish(ctx context.Context, d bus.JobDelivery, job contract.Job, exec contract.Execution, log *slog.Logger) {
	if w.opts.Reporter != nil {
		var err error
		for try := 1; try <= 5; try++ {
			if err = w.opts.Reporter.Report(ctx, exec); err == nil {
				break
			}
			log.Error("reporting failed", "err", err, "try", try)
			if !sleep(ctx, backoff(w.opts.ReportWait, try, 30*time.Second)) {
				break
			}
		}
		if err != nil {
			log.Error("results not reported, handing the job back", "err", err)
			_ = d.Nack()
			if w.opts.Observer != nil {
				w.opts.Observer.Requeued(job, job.Attempt+1, "handed back: its results could not be reported: "+err.Error())
			}
			return
		}
	}
	if err := d.Ack(); err != nil {
		// The results are stored; a redelivery is reported once.
		log.Error("ack failed", "err", err)
	}
	log.Info("job done", "execution_status", exec.ExecutionStatus, "exit_code", exec.ExitCode, "results", exec.NumResults())
	if w.opts.OnDone != nil {
		w.opts.OnDone(job, exec)
	}
	if w.opts.Observer != nil {
		w.opts.Observer.Done(job, exec)
	}
}

func backoff(base time.Duration, n int, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
