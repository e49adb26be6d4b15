package execdb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/sqldb/sqldbtest"

	"github.com/taskotron-go/taskotron/contract"
)

// openTestStore opens a fresh store: a new SQLite file, or a new schema
// in the PostgreSQL test database, dropped afterwards.
func openTestStore(t testing.TB, kind string) *Store {
	t.Helper()
	ctx := context.Background()
	if kind == "sqlite" {
		s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "executions.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, err := Open(ctx, sqldbtest.FreshSchema(t, "exectest"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func onEachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { test(t, openTestStore(t, kind)) })
	}
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func ev(id, uuid string, attempt int, state string, at time.Duration) contract.ExecutionEvent {
	return contract.ExecutionEvent{ID: id, UUID: uuid, Attempt: attempt, State: state, Time: t0.Add(at)}
}

// TestAnExecutionThroughEveryState: queued by the trigger, run by worker A
// which dies, run again by worker B, finished; events cross on their way
// and come twice, and the record ends right.
func TestAnExecutionThroughEveryState(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		queued := ev("trig-1", "u-1", 0, contract.StateQueued, 0)
		queued.Item, queued.ItemType, queued.TaskName, queued.Arch, queued.Priority, queued.MsgID, queued.Rule = "xchat-0.5-1.fc20", "koji_build", "rpmlint", "x86_64", 3, "msg-1", "built-in:12"
		runA := ev("wa-1", "u-1", 1, contract.StateRunning, time.Second)
		runA.Worker, runA.Action = "worker-a", "download"
		runB := ev("wb-1", "u-1", 2, contract.StateRunning, 10*time.Second)
		runB.Worker = "worker-b"
		act := ev("wb-2", "u-1", 2, contract.StateRunning, 11*time.Second)
		act.Worker, act.Action = "worker-b", "run rpmlint"
		done := ev("wb-3", "u-1", 2, contract.StateFinished, 20*time.Second)
		done.ExecutionStatus, done.Outcome, done.Results = "OK", contract.Failed, 2

		// Worker B's first event overtakes the trigger's.
		if n, err := s.Apply(ctx, []contract.ExecutionEvent{runA}); err != nil || n != 1 {
			t.Fatalf("apply: %d %v", n, err)
		}
		if _, err := s.Apply(ctx, []contract.ExecutionEvent{queued, runB, act}); err != nil {
			t.Fatal(err)
		}
		d, err := s.Get(ctx, "u-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != contract.StateRunning || d.Attempt != 2 || d.Worker != "worker-b" || d.Action != "run rpmlint" || d.Item != "xchat-0.5-1.fc20" || d.Priority != 3 || d.Rule != "built-in:12" {
			t.Fatalf("while running: %+v", d.Execution)
		}
		if !d.Created.Equal(t0) {
			t.Errorf("created %s, want the trigger's time %s", d.Created, t0)
		}
		if len(d.Attempts) != 2 || d.Attempts[0].State != contract.StateCrashed || !strings.Contains(d.Attempts[0].Reason, "stopped answering") || d.Attempts[1].Worker != "worker-b" {
			t.Fatalf("attempts: %+v", d.Attempts)
		}
		// The end, sent twice (a retry after a lost answer).
		for i := 0; i < 2; i++ {
			if _, err := s.Apply(ctx, []contract.ExecutionEvent{done}); err != nil {
				t.Fatal(err)
			}
		}
		d, _ = s.Get(ctx, "u-1")
		if d.State != contract.StateFinished || d.Outcome != "FAILED" || d.Results != 2 || d.Finished == nil || d.Started == nil || !d.Started.Equal(t0.Add(time.Second)) {
			t.Fatalf("finished: %+v", d.Execution)
		}
		if len(d.Timeline) != 5 {
			t.Errorf("timeline has %d events, want 5 (the resent one once)", len(d.Timeline))
		}
		// A late queued event does not take it back.
		late := ev("trig-2", "u-1", 0, contract.StateQueued, 30*time.Second)
		s.Apply(ctx, []contract.ExecutionEvent{late})
		if d, _ := s.Get(ctx, "u-1"); d.State != contract.StateFinished {
			t.Errorf("a late queued event made it %s", d.State)
		}
	})
}

func TestQueueOrderAndFilters(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mk := func(uuid, task string, prio int, at time.Duration, state string) contract.ExecutionEvent {
			e := ev(uuid+"-q", uuid, 0, contract.StateQueued, at)
			e.TaskName, e.Item, e.Arch, e.Priority = task, "item-"+uuid, "x86_64", prio
			return e
		}
		evs := []contract.ExecutionEvent{
			mk("old-low", "rpmlint", 0, 0, ""), mk("new-high", "depcheck", 5, 2*time.Second, ""), mk("mid-low", "rpmlint", 0, time.Second, ""),
			mk("running", "rpmlint", 0, 0, ""), ev("running-r", "running", 1, contract.StateRunning, 3*time.Second),
		}
		if _, err := s.Apply(ctx, evs); err != nil {
			t.Fatal(err)
		}
		q, err := s.Queue(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, e := range q.Waiting {
			order = append(order, e.UUID)
		}
		if strings.Join(order, " ") != "new-high old-low mid-low" || len(q.Running) != 1 || q.Running[0].UUID != "running" {
			t.Fatalf("queue: waiting %v, running %+v", order, q.Running)
		}
		list, err := s.List(ctx, Query{States: []string{contract.StateQueued}, TaskName: "rpmlint"})
		if err != nil || len(list) != 2 || list[0].UUID != "mid-low" {
			t.Fatalf("queued rpmlint, newest first: %+v %v", list, err)
		}
		counts, _ := s.Count(ctx)
		if counts[contract.StateQueued] != 3 || counts[contract.StateRunning] != 1 {
			t.Errorf("counts %v", counts)
		}
		// Pruning takes what ended before the cutoff.
		s.Apply(ctx, []contract.ExecutionEvent{ev("old-low-done", "old-low", 1, contract.StateFinished, 4*time.Second)})
		gone, err := s.Prune(ctx, t0.Add(time.Hour))
		if err != nil || len(gone) != 1 || gone[0] != "old-low" {
			t.Fatalf("pruned %v %v", gone, err)
		}
		if _, err := s.Get(ctx, "old-low"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a pruned execution is still there: %v", err)
		}
	})
}

func TestLogsAppendInOrderAndResume(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.AppendLog(ctx, "u", 1, "taskotron.log", 0, []byte("line 1\n")); err != nil {
			t.Fatal(err)
		}
		n, err := s.AppendLog(ctx, "u", 1, "taskotron.log", 7, []byte("line 2\n"))
		if err != nil || n != 14 {
			t.Fatalf("second chunk: %d %v", n, err)
		}
		// A resend of the first chunk (its answer was lost) says where to go on.
		var oe *OffsetError
		if _, err := s.AppendLog(ctx, "u", 1, "taskotron.log", 0, []byte("line 1\n")); !errors.As(err, &oe) || oe.Size != 14 {
			t.Fatalf("a resent chunk: %v", err)
		}
		data, size, err := s.ReadLog(ctx, "u", 1, "taskotron.log", 3, 1<<20)
		if err != nil || string(data) != "e 1\nline 2\n" || size != 14 {
			t.Fatalf("read from 3: %q %d %v", data, size, err)
		}
		if _, _, err := s.ReadLog(ctx, "u", 2, "taskotron.log", 0, 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("another attempt's log: %v", err)
		}
	})
}

// TestAnAttemptHandedBackIsRetriedNotCrashed: a worker that stops during a
// run hands the job back (a queued event for the next attempt, saying
// why); that attempt shows retried for that reason, not crashed, also once
// the next attempt runs elsewhere.
func TestAnAttemptHandedBackIsRetriedNotCrashed(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		run1 := ev("wa-1", "u-2", 1, contract.StateRunning, time.Second)
		run1.Worker = "worker-a"
		back := ev("wa-2", "u-2", 2, contract.StateQueued, 5*time.Second)
		back.Worker, back.Reason = "worker-a", "handed back: the worker stopped during the run"
		late := ev("wa-3", "u-2", 1, contract.StateRunning, 4*time.Second) // an action event that arrives late
		late.Worker, late.Action = "worker-a", "run"
		if _, err := s.Apply(ctx, []contract.ExecutionEvent{run1, back, late}); err != nil {
			t.Fatal(err)
		}
		d, err := s.Get(ctx, "u-2")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != contract.StateQueued || d.Attempt != 2 || d.Reason != back.Reason {
			t.Errorf("handed back: %+v", d.Execution)
		}
		run2 := ev("wb-1", "u-2", 2, contract.StateRunning, 10*time.Second)
		run2.Worker = "worker-b"
		if _, err := s.Apply(ctx, []contract.ExecutionEvent{run2}); err != nil {
			t.Fatal(err)
		}
		d, _ = s.Get(ctx, "u-2")
		if len(d.Attempts) != 2 || d.Attempts[0].State != attemptRetried || d.Attempts[0].Reason != back.Reason || d.Attempts[0].Ended == nil ||
			d.Attempts[1].State != contract.StateRunning || d.Attempts[1].Worker != "worker-b" {
			t.Errorf("attempts: %+v; want 1 retried (handed back), 2 running on worker-b", d.Attempts)
		}

		// The same when the next attempt's start arrives before the word.
		run1 = ev("wc-1", "u-3", 1, contract.StateRunning, time.Second)
		run1.Worker = "worker-c"
		back = ev("wc-2", "u-3", 2, contract.StateQueued, 5*time.Second)
		back.Worker, back.Reason = "worker-c", "its delivery was lost: the broker connection closed during the run"
		run2 = ev("wd-1", "u-3", 2, contract.StateRunning, 10*time.Second)
		for _, e := range []contract.ExecutionEvent{run1, run2, back} {
			if _, err := s.Apply(ctx, []contract.ExecutionEvent{e}); err != nil {
				t.Fatal(err)
			}
		}
		d, _ = s.Get(ctx, "u-3")
		if len(d.Attempts) != 2 || d.Attempts[0].State != attemptRetried || d.Attempts[0].Reason != back.Reason || d.State != contract.StateRunning || d.Attempt != 2 {
			t.Errorf("the word after the next start: %+v, attempts %+v", d.Execution, d.Attempts)
		}

		// Another's conclusion (the labs hub: a lease expired) is no
		// hand-back: that attempt's lab was lost.
		run1 = ev("we-1", "u-4", 1, contract.StateRunning, time.Second)
		run1.Worker = "lab lab-b/lab-b"
		back = ev("hub-1", "u-4", 2, contract.StateQueued, 5*time.Second)
		back.Reason = "lab lab-b (board lab-b) stopped answering: its lease of attempt 1 expired"
		run2 = ev("wf-1", "u-4", 2, contract.StateRunning, 10*time.Second)
		run2.Worker = "lab lab-a/lab-a"
		s.Apply(ctx, []contract.ExecutionEvent{run1, back, run2})
		d, _ = s.Get(ctx, "u-4")
		if len(d.Attempts) != 2 || d.Attempts[0].State != contract.StateCrashed {
			t.Errorf("a lost lab's attempt: %+v, want crashed", d.Attempts)
		}
	})
}

// TestLogsAreFinalWhenTheirShipperSaysSo: the end of a run is reported
// before its shipper sends the tail of the log, so a log is whole when the
// shipper closes it, not when the attempt ends; an attempt whose worker was
// lost has nothing more coming; one that ended long ago neither.
func TestLogsAreFinalWhenTheirShipperSaysSo(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		at := func(id, uuid string, attempt int, state string, ago time.Duration) contract.ExecutionEvent {
			return contract.ExecutionEvent{ID: id, UUID: uuid, Attempt: attempt, State: state, Time: now.Add(-ago)}
		}
		final := func(uuid string, attempt int) bool {
			t.Helper()
			f, err := s.logsFinal(ctx, uuid, attempt)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		s.Apply(ctx, []contract.ExecutionEvent{at("a1", "f", 1, contract.StateRunning, 2*time.Second)})
		if final("f", 1) {
			t.Error("a running attempt's log is final")
		}
		s.Apply(ctx, []contract.ExecutionEvent{at("a2", "f", 1, contract.StateFinished, time.Second)})
		if final("f", 1) {
			t.Error("final as soon as the attempt finished, before its shipper sent the tail")
		}
		if err := s.CloseLogs(ctx, "f", 1); err != nil {
			t.Fatal(err)
		}
		if !final("f", 1) {
			t.Error("not final once closed")
		}
		// A worker lost: attempt 1 crashed when attempt 2 began.
		s.Apply(ctx, []contract.ExecutionEvent{at("b1", "g", 1, contract.StateRunning, 3*time.Second), at("b2", "g", 2, contract.StateRunning, time.Second)})
		if !final("g", 1) || final("g", 2) {
			t.Errorf("lost worker's attempt final %v (want true), the running one %v (want false)", final("g", 1), final("g", 2))
		}
		// Ended long ago, never closed (its worker died after the end).
		s.Apply(ctx, []contract.ExecutionEvent{at("c1", "h", 1, contract.StateRunning, time.Hour), at("c2", "h", 1, contract.StateFinished, time.Hour-time.Second)})
		if !final("h", 1) {
			t.Error("an attempt that ended an hour ago is not final")
		}
		if !final("nosuch", 1) {
			t.Error("an execution that is not there has a log to come")
		}
	})
}
