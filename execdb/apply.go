package execdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/taskotron-go/taskotron/contract"
)

// CheckEvent says what is wrong with an event from outside, in one line.
func CheckEvent(ev contract.ExecutionEvent) error {
	switch {
	case ev.ID == "" || len(ev.ID) > 200:
		return fmt.Errorf("event id %q: want 1 to 200 characters", ev.ID)
	case ev.UUID == "" || len(ev.UUID) > 128:
		return fmt.Errorf("event %s: uuid %q: want 1 to 128 characters", ev.ID, ev.UUID)
	case !knownState(ev.State):
		return fmt.Errorf("event %s: state %q: want one of %s", ev.ID, ev.State, strings.Join(States, ", "))
	case ev.Attempt < 0 || ev.Attempt > 1000:
		return fmt.Errorf("event %s: attempt %d: want 0 to 1000", ev.ID, ev.Attempt)
	case ev.Time.IsZero() || ev.Time.Year() < 2000 || ev.Time.Year() > 9999:
		return fmt.Errorf("event %s: time %s: want a time after 2000", ev.ID, ev.Time)
	}
	for name, v := range map[string]string{"item": ev.Item, "item_type": ev.ItemType, "taskname": ev.TaskName, "arch": ev.Arch,
		"msg_id": ev.MsgID, "rule": ev.Rule, "worker": ev.Worker, "action": ev.Action, "reason": ev.Reason} {
		if len(v) > 8192 || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("event %s: %s: want at most 8192 bytes of text without NUL", ev.ID, name)
		}
	}
	return nil
}

// Apply records events, each once (a resent event changes nothing), in one
// transaction. The execution's state is its latest by attempt, then phase,
// then time, so events of different producers that cross on their way (the
// trigger's "queued" after the worker's "running") end in the right state.
// An attempt that was running when a later attempt began was lost with its
// worker: it is marked crashed.
func (s *Store) Apply(ctx context.Context, evs []contract.ExecutionEvent) (applied int, err error) {
	for _, ev := range evs {
		if err := CheckEvent(ev); err != nil {
			return 0, err
		}
	}
	var obs []observation
	err = s.tx(ctx, func(tx *sql.Tx) error {
		applied, obs = 0, obs[:0]
		for _, ev := range evs {
			ok, err := s.apply(ctx, tx, ev, &obs)
			if err != nil {
				return fmt.Errorf("event %s: %w", ev.ID, err)
			}
			if ok {
				applied++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if applied > 0 {
		s.notify()
	}
	if m := s.metrics; m != nil {
		for _, o := range obs {
			m.observe(o)
		}
	}
	return applied, nil
}

// observation is what one applied event tells the metrics: how long the
// job waited in the queue before its first run, or how long a run took.
type observation struct {
	task, state string
	queued      bool // wait is set; else run
	wait, run   time.Duration
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, ev contract.ExecutionEvent, obs *[]observation) (bool, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	t := micros(ev.Time)
	res, err := tx.ExecContext(ctx, s.bind(`INSERT INTO exec_events (id, uuid, time, body) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		ev.ID, ev.UUID, t, string(body))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err // seen before
	}
	var retryAt any
	if ev.RetryAt != nil {
		retryAt = micros(*ev.RetryAt)
	}
	ph := phase(ev.State)
	var cur struct {
		attempt, phase, priority              int
		since, created                        int64
		task, item, itemType, arch, msg, rule string
		started                               sql.NullInt64
	}
	err = tx.QueryRowContext(ctx, s.bind(`SELECT attempt, phase, since, created, taskname, item, item_type, arch, msg_id, rule, priority, started
		FROM exec_executions WHERE uuid = ?`), ev.UUID).
		Scan(&cur.attempt, &cur.phase, &cur.since, &cur.created, &cur.task, &cur.item, &cur.itemType, &cur.arch, &cur.msg, &cur.rule, &cur.priority, &cur.started)
	task := cur.task
	if errors.Is(err, sql.ErrNoRows) {
		cur.created, task = t, ev.TaskName
	} else if task == "" {
		task = ev.TaskName
	}
	fills := func(have, got string) bool { return have == "" && got != "" }
	// Most events repeat what the record has: no update then.
	metaChanged := fills(cur.item, ev.Item) || fills(cur.itemType, ev.ItemType) || fills(cur.task, ev.TaskName) || fills(cur.arch, ev.Arch) ||
		fills(cur.msg, ev.MsgID) || fills(cur.rule, ev.Rule) || (ev.State == contract.StateQueued && ev.Priority != cur.priority) || t < cur.created
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, s.bind(`INSERT INTO exec_executions
			(uuid, item, item_type, taskname, arch, priority, msg_id, rule, created, state, attempt, phase, since, worker, action, retry_at, reason, execution_status, outcome, results)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			ev.UUID, ev.Item, ev.ItemType, ev.TaskName, ev.Arch, ev.Priority, ev.MsgID, ev.Rule, t,
			ev.State, ev.Attempt, ph, t, ev.Worker, ev.Action, retryAt, ev.Reason, ev.ExecutionStatus, string(ev.Outcome), ev.Results)
		if err != nil {
			return false, err
		}
	case err != nil:
		return false, err
	default:
		// What the job is: from whichever event says it first.
		if metaChanged {
			_, err = tx.ExecContext(ctx, s.bind(`UPDATE exec_executions SET
			item = CASE WHEN item = '' THEN ? ELSE item END, item_type = CASE WHEN item_type = '' THEN ? ELSE item_type END,
			taskname = CASE WHEN taskname = '' THEN ? ELSE taskname END, arch = CASE WHEN arch = '' THEN ? ELSE arch END,
			msg_id = CASE WHEN msg_id = '' THEN ? ELSE msg_id END, rule = CASE WHEN rule = '' THEN ? ELSE rule END,
			priority = CASE WHEN ? THEN ? ELSE priority END, created = CASE WHEN ? < created THEN ? ELSE created END
			WHERE uuid = ?`),
				ev.Item, ev.ItemType, ev.TaskName, ev.Arch, ev.MsgID, ev.Rule, ev.State == contract.StateQueued, ev.Priority, t, t, ev.UUID)
			if err != nil {
				return false, err
			}
		}
		if later(ev.Attempt, ph, t, cur.attempt, cur.phase, cur.since) {
			_, err = tx.ExecContext(ctx, s.bind(`UPDATE exec_executions SET state = ?, attempt = ?, phase = ?, since = ?,
				worker = CASE WHEN ? <> '' THEN ? ELSE worker END, action = ?, retry_at = ?, reason = ?,
				execution_status = ?, outcome = ?, results = ? WHERE uuid = ?`),
				ev.State, ev.Attempt, ph, t, ev.Worker, ev.Worker, ev.Action, retryAt, ev.Reason,
				ev.ExecutionStatus, string(ev.Outcome), ev.Results, ev.UUID)
			if err != nil {
				return false, err
			}
		}
	}
	if ev.State == contract.StateRunning && (!cur.started.Valid || cur.started.Int64 > t) {
		if _, err := tx.ExecContext(ctx, s.bind(`UPDATE exec_executions SET started = ? WHERE uuid = ? AND (started IS NULL OR started > ?)`), t, ev.UUID, t); err != nil {
			return false, err
		}
	}
	if terminal(ev.State) {
		if _, err := tx.ExecContext(ctx, s.bind(`UPDATE exec_executions SET finished = ? WHERE uuid = ? AND phase = 3`), t, ev.UUID); err != nil {
			return false, err
		}
	}
	if ev.Attempt < 1 {
		return true, nil
	}
	return true, s.applyAttempt(ctx, tx, ev, ph, t, cur.created, task, obs)
}

// later orders (attempt, phase, time) keys.
func later(attempt, ph int, t int64, curAttempt, curPhase int, curSince int64) bool {
	if attempt != curAttempt {
		return attempt > curAttempt
	}
	if ph != curPhase {
		return ph > curPhase
	}
	return t >= curSince
}

func (s *Store) applyAttempt(ctx context.Context, tx *sql.Tx, ev contract.ExecutionEvent, ph int, t, created int64, task string, obs *[]observation) error {
	var started, ended any
	if ev.State == contract.StateRunning {
		started = t
	}
	if ph >= 2 {
		ended = t
	}
	var cur struct {
		phase   int
		since   int64
		started sql.NullInt64
	}
	err := tx.QueryRowContext(ctx, s.bind(`SELECT phase, since, started FROM exec_attempts WHERE uuid = ? AND attempt = ?`), ev.UUID, ev.Attempt).
		Scan(&cur.phase, &cur.since, &cur.started)
	if ph >= 2 && cur.started.Valid && (err == nil && cur.phase < ph) {
		*obs = append(*obs, observation{task: task, state: ev.State, run: time.Duration(t-cur.started.Int64) * time.Microsecond})
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if ev.State == contract.StateQueued {
			break // an attempt starts when it runs
		}
		if ev.State == contract.StateRunning && ev.Attempt == 1 {
			*obs = append(*obs, observation{task: task, queued: true, wait: time.Duration(max(0, t-created)) * time.Microsecond})
		}
		_, err = tx.ExecContext(ctx, s.bind(`INSERT INTO exec_attempts (uuid, attempt, state, phase, since, worker, started, ended, reason, execution_status, outcome, results)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			ev.UUID, ev.Attempt, ev.State, ph, t, ev.Worker, started, ended, ev.Reason, ev.ExecutionStatus, string(ev.Outcome), ev.Results)
		if err != nil {
			return err
		}
	case err != nil:
		return err
	case later(0, ph, t, 0, cur.phase, cur.since):
		_, err = tx.ExecContext(ctx, s.bind(`UPDATE exec_attempts SET state = ?, phase = ?, since = ?,
			worker = CASE WHEN ? <> '' THEN ? ELSE worker END, started = COALESCE(started, ?), ended = COALESCE(?, ended),
			reason = ?, execution_status = ?, outcome = ?, results = ? WHERE uuid = ? AND attempt = ?`),
			ev.State, ph, t, ev.Worker, ev.Worker, started, ended, ev.Reason, ev.ExecutionStatus, string(ev.Outcome), ev.Results, ev.UUID, ev.Attempt)
		if err != nil {
			return err
		}
	}
	// Earlier attempts are over. One that its worker gave back (its queued
	// event for a later attempt, with why: the worker stopping, a lost
	// delivery, a retry through the queue) was retried, for that reason;
	// one that waited for its retry was retried; one still running when a
	// later one began, without a word from its worker, lost its worker.
	if ev.Attempt <= 1 {
		return nil // there are none: the first attempt's events, most of them, need no more statements
	}
	if ev.State == contract.StateQueued && ev.Worker != "" {
		// The worker's own word, not another's conclusion (a lease that
		// expired: that lab was lost). Also when the next attempt's start
		// overtook it (from another worker's outbox) and marked it crashed
		// meanwhile.
		if _, err := tx.ExecContext(ctx, s.bind(`UPDATE exec_attempts SET state = ?, phase = 3, ended = COALESCE(ended, ?), reason = ?
			WHERE uuid = ? AND attempt < ? AND worker = ? AND (state = ? OR (state = ? AND reason LIKE ?))`),
			attemptRetried, t, ev.Reason, ev.UUID, ev.Attempt, ev.Worker, contract.StateRunning, contract.StateCrashed, lostWorker+"%"); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.bind(`UPDATE exec_attempts SET state = ? WHERE uuid = ? AND attempt < ? AND state = ?`),
		attemptRetried, ev.UUID, ev.Attempt, contract.StateWaitingRetry); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.bind(`UPDATE exec_attempts SET state = ?, phase = 3, ended = ?,
		reason = ? WHERE uuid = ? AND attempt < ? AND state = ?`),
		contract.StateCrashed, t, fmt.Sprintf("%s: attempt %d came after it", lostWorker, ev.Attempt), ev.UUID, ev.Attempt, contract.StateRunning)
	return err
}

// lostWorker begins the reason of an attempt that was running when a later
// one began.
const lostWorker = "its worker stopped answering"

// Prune deletes executions, their attempts, timelines and logs that ended
// (or were last heard of) before the given time; it returns their uuids.
func (s *Store) Prune(ctx context.Context, before time.Time) ([]string, error) {
	var uuids []string
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT uuid FROM exec_executions WHERE since < ? AND (phase = 3 OR since < ?)`),
		micros(before), micros(before.Add(-30*24*time.Hour)))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return nil, err
		}
		uuids = append(uuids, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for start := 0; start < len(uuids); start += 200 {
		batch := uuids[start:min(start+200, len(uuids))]
		in := strings.Repeat("?, ", len(batch)-1) + "?"
		args := make([]any, len(batch))
		for i, u := range batch {
			args[i] = u
		}
		err := s.tx(ctx, func(tx *sql.Tx) error {
			for _, table := range []string{"exec_executions", "exec_attempts", "exec_events", "exec_log_files", "exec_log_chunks", "exec_logs_closed"} {
				if _, err := tx.ExecContext(ctx, s.bind("DELETE FROM "+table+" WHERE uuid IN ("+in+")"), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return uuids[:start], err
		}
	}
	return uuids, nil
}
