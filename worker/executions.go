package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/results"
)

// executions reports the jobs a worker runs to the central server: their
// state changes through a durable outbox (a server away holds up no job and
// loses no change), each attempt's log as it is written, and its artifacts
// before its results, so that a worker on another host serves nothing.
type executions struct {
	outbox    *execdb.Outbox
	client    *execdb.Client
	worker    string
	artifacts string // the runner's artifacts folder
	upload    bool
	maxUpload int64
	log       *slog.Logger

	mu       sync.Mutex
	running  map[string]*shipping // by execution uuid
	finishes sync.WaitGroup       // shippers sending the end of their logs
}

type shipping struct {
	job      contract.Job
	ship     *execdb.Shipper
	uploaded bool
}

// logDir is the runner's log folder of an execution (runner.LogDir).
const logDir = "taskotron"

func newExecutions(outbox *execdb.Outbox, client *execdb.Client, artifacts string, upload bool, maxUpload int64, log *slog.Logger) *executions {
	host, _ := os.Hostname()
	return &executions{outbox: outbox, client: client, worker: fmt.Sprintf("%s:%d", host, os.Getpid()), artifacts: artifacts,
		upload: upload, maxUpload: maxUpload, log: log, running: map[string]*shipping{}}
}

func (e *executions) emit(ev contract.ExecutionEvent) {
	if err := e.outbox.Emit(ev); err != nil {
		e.log.Error("execution state change not kept", "uuid", ev.UUID, "state", ev.State, "err", err)
	}
}

func (e *executions) event(job contract.Job, state string) contract.ExecutionEvent {
	return contract.ExecutionEvent{UUID: job.UUID, Attempt: job.Attempt, State: state, Worker: e.worker,
		Item: job.Item, ItemType: job.ItemType, TaskName: job.TaskName, Arch: job.Arch, Priority: job.Priority, MsgID: job.MsgID, Rule: job.Rule}
}

func (e *executions) Started(job contract.Job) {
	e.emit(e.event(job, contract.StateRunning))
	ship := e.client.Ship(filepath.Join(e.artifacts, job.UUID, logDir), job.UUID, job.Attempt, e.log)
	e.mu.Lock()
	if old := e.running[job.UUID]; old != nil {
		e.finish(old)
	}
	e.running[job.UUID] = &shipping{job: job, ship: ship}
	e.mu.Unlock()
}

// action is the runner's OnAction.
func (e *executions) action(uuid, action string) {
	if action == "" {
		return
	}
	e.mu.Lock()
	s := e.running[uuid]
	e.mu.Unlock()
	if s == nil {
		return
	}
	ev := e.event(s.job, contract.StateRunning)
	ev.Action = action
	e.emit(ev)
}

func (e *executions) RetryWaiting(job contract.Job, at time.Time, reason string) {
	ev := e.event(job, contract.StateWaitingRetry)
	ev.RetryAt, ev.Reason = &at, reason
	e.emit(ev)
	e.stop(job.UUID)
}

func (e *executions) Requeued(job contract.Job, attempt int, reason string) {
	ev := e.event(job, contract.StateQueued)
	// With the worker: its own word that it gave the attempt back.
	ev.Attempt, ev.Reason = attempt, reason
	e.emit(ev)
	e.stop(job.UUID)
}

func (e *executions) Done(job contract.Job, exec contract.Execution) {
	ev := e.event(job, contract.StateFinished)
	ev.ExecutionStatus, ev.Results = exec.ExecutionStatus, exec.NumResults()
	// An unreadable results file fails the report, which says why.
	ev.Outcome, _ = results.Worst(exec)
	if exec.ExecutionStatus == contract.ExecutionNotOK {
		ev.Reason = exec.Status
		switch exec.Outcome {
		case contract.Aborted:
			ev.State = contract.StateAborted
		case contract.Crashed:
			ev.State = contract.StateCrashed
		}
	}
	e.emit(ev)
	e.stop(job.UUID)
}

// stop lets the attempt's log shipper send what is left, in the background.
func (e *executions) stop(uuid string) {
	e.mu.Lock()
	s := e.running[uuid]
	delete(e.running, uuid)
	if s != nil {
		e.finish(s)
	}
	e.mu.Unlock()
}

func (e *executions) finish(s *shipping) {
	e.finishes.Add(1)
	go func() {
		defer e.finishes.Done()
		if !s.ship.Finish(10 * time.Minute) {
			e.log.Warn("live log: the end of the log was not sent; the executions server was away", "uuid", s.job.UUID, "attempt", s.job.Attempt)
		}
	}()
}

// uploadArtifacts sends an execution's artifacts once per attempt, before
// its results point at them. A failure is logged: the results still go.
func (e *executions) uploadArtifacts(ctx context.Context, exec contract.Execution) {
	if !e.upload || exec.Artifacts == "" {
		return
	}
	e.mu.Lock()
	s := e.running[exec.UUID]
	if s != nil {
		if s.uploaded {
			e.mu.Unlock()
			return
		}
		s.uploaded = true
	}
	e.mu.Unlock()
	err := e.uploadOnce(ctx, exec)
	if err == nil {
		return
	}
	if execdb.Final(err) || errors.Is(err, execdb.ErrArtifactsTooLarge) {
		e.log.Error("artifacts not uploaded to the executions server", "uuid", exec.UUID, "err", err)
		return
	}
	// The server is away (restarting, say): the results go now, the
	// artifacts as soon as it is back, as the state changes and logs do.
	e.log.Warn("artifacts not uploaded yet: the executions server is away; trying again in the background", "uuid", exec.UUID, "err", err)
	e.finishes.Add(1)
	go func() {
		defer e.finishes.Done()
		wait := time.Second
		for giveUp := time.Now().Add(uploadRetries); time.Now().Before(giveUp); {
			time.Sleep(wait)
			wait = min(2*wait, 30*time.Second)
			err := e.uploadOnce(context.Background(), exec)
			switch {
			case err == nil:
				e.log.Info("artifacts uploaded to the executions server", "uuid", exec.UUID)
				return
			case execdb.Final(err) || errors.Is(err, execdb.ErrArtifactsTooLarge):
				e.log.Error("artifacts not uploaded to the executions server", "uuid", exec.UUID, "err", err)
				return
			}
		}
		e.log.Error("artifacts not uploaded to the executions server: it stayed away", "uuid", exec.UUID, "for", uploadRetries)
	}()
}

// uploadRetries is how long the artifacts of a run are offered to a server
// that is away.
const uploadRetries = 30 * time.Minute

func (e *executions) uploadOnce(ctx context.Context, exec contract.Execution) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return e.client.UploadArtifacts(ctx, exec.UUID, exec.Artifacts, e.maxUpload)
}

// wait gives the log shippers up to within to finish.
func (e *executions) wait(within time.Duration) {
	done := make(chan struct{})
	go func() { e.finishes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		e.log.Warn("stopping with live logs not fully sent")
	}
}

// uploadingReporter sends an execution's artifacts before its results.
type uploadingReporter struct {
	Reporter
	e *executions
}

func (u uploadingReporter) Report(ctx context.Context, exec contract.Execution) error {
	u.e.uploadArtifacts(ctx, exec)
	return u.Reporter.Report(ctx, exec)
}
