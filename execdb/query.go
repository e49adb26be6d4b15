package execdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

const executionColumns = `uuid, item, item_type, taskname, arch, priority, msg_id, rule, created, state, attempt, since,
	worker, action, retry_at, reason, execution_status, outcome, results, started, finished`

func scanExecution(row interface{ Scan(...any) error }) (Execution, error) {
	var e Execution
	var created, since int64
	var retryAt, started, finished sql.NullInt64
	err := row.Scan(&e.UUID, &e.Item, &e.ItemType, &e.TaskName, &e.Arch, &e.Priority, &e.MsgID, &e.Rule, &created, &e.State, &e.Attempt, &since,
		&e.Worker, &e.Action, &retryAt, &e.Reason, &e.ExecutionStatus, &e.Outcome, &e.Results, &started, &finished)
	if err != nil {
		return e, err
	}
	e.Created, e.Since = time.UnixMicro(created).UTC(), time.UnixMicro(since).UTC()
	e.RetryAt, e.Started, e.Finished = fromMicros(retryAt), fromMicros(started), fromMicros(finished)
	return e, nil
}

func (s *Store) executions(ctx context.Context, q string, args ...any) ([]Execution, error) {
	rows, err := s.db.QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Execution{}
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// List returns executions matching q, newest first.
func (s *Store) List(ctx context.Context, q Query) ([]Execution, error) {
	var where []string
	var args []any
	if len(q.States) > 0 {
		where = append(where, "state IN ("+strings.Repeat("?, ", len(q.States)-1)+"?)")
		for _, st := range q.States {
			args = append(args, st)
		}
	}
	for col, v := range map[string]string{"item": q.Item, "taskname": q.TaskName, "arch": q.Arch} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "created >= ?")
		args = append(args, micros(q.Since))
	}
	query := "SELECT " + executionColumns + " FROM exec_executions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 20
	}
	query += " ORDER BY created DESC, uuid LIMIT ? OFFSET ?"
	args = append(args, limit, q.Offset)
	return s.executions(ctx, query, args...)
}

// Queue is what waits, in the order it will run (priority, then age), what
// waits for a retry (soonest first: its worker holds it until then), and
// what runs, oldest first.
type Queue struct {
	Waiting  []Execution `json:"waiting"`
	Retrying []Execution `json:"retrying"`
	Running  []Execution `json:"running"`
}

// Queue reads the queue, at most limit of each.
func (s *Store) Queue(ctx context.Context, limit int) (Queue, error) {
	var q Queue
	var err error
	q.Waiting, err = s.executions(ctx, "SELECT "+executionColumns+` FROM exec_executions WHERE state = ?
		ORDER BY priority DESC, created, uuid LIMIT ?`, contract.StateQueued, limit)
	if err != nil {
		return q, err
	}
	q.Retrying, err = s.executions(ctx, "SELECT "+executionColumns+` FROM exec_executions WHERE state = ?
		ORDER BY retry_at, uuid LIMIT ?`, contract.StateWaitingRetry, limit)
	if err != nil {
		return q, err
	}
	q.Running, err = s.executions(ctx, "SELECT "+executionColumns+` FROM exec_executions WHERE state = ?
		ORDER BY started, uuid LIMIT ?`, contract.StateRunning, limit)
	return q, err
}

// Count says how many executions are in each state.
func (s *Store) Count(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM exec_executions GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for _, st := range States {
		out[st] = 0
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// Get returns one execution with its attempts, timeline and logs.
func (s *Store) Get(ctx context.Context, uuid string) (Detail, error) {
	var d Detail
	e, err := scanExecution(s.db.QueryRowContext(ctx, s.bind("SELECT "+executionColumns+" FROM exec_executions WHERE uuid = ?"), uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, err
	}
	d.Execution = e
	d.Attempts, d.Timeline, d.Logs = []Attempt{}, []contract.ExecutionEvent{}, []LogFile{}
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT attempt, state, worker, started, ended, reason, execution_status, outcome, results
		FROM exec_attempts WHERE uuid = ? ORDER BY attempt`), uuid)
	if err != nil {
		return d, err
	}
	for rows.Next() {
		var a Attempt
		var started, ended sql.NullInt64
		if err := rows.Scan(&a.Attempt, &a.State, &a.Worker, &started, &ended, &a.Reason, &a.ExecutionStatus, &a.Outcome, &a.Results); err != nil {
			rows.Close()
			return d, err
		}
		a.Started, a.Ended = fromMicros(started), fromMicros(ended)
		d.Attempts = append(d.Attempts, a)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, s.bind(`SELECT body FROM exec_events WHERE uuid = ? ORDER BY time, id`), uuid)
	if err != nil {
		return d, err
	}
	for rows.Next() {
		var body string
		var ev contract.ExecutionEvent
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return d, err
		}
		if json.Unmarshal([]byte(body), &ev) == nil {
			d.Timeline = append(d.Timeline, ev)
		}
	}
	rows.Close()
	d.Logs, err = s.Logs(ctx, uuid)
	return d, err
}

// Logs lists the logs of an execution, by attempt and name.
func (s *Store) Logs(ctx context.Context, uuid string) ([]LogFile, error) {
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT attempt, name, size, truncated FROM exec_log_files WHERE uuid = ? ORDER BY attempt, name`), uuid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []LogFile{}
	for rows.Next() {
		var f LogFile
		var trunc int
		if err := rows.Scan(&f.Attempt, &f.Name, &f.Size, &trunc); err != nil {
			return nil, err
		}
		f.Truncated = trunc != 0
		out = append(out, f)
	}
	return out, rows.Err()
}

// AppendLog adds data at pos to a log of an attempt. pos must be the log's
// size (an *OffsetError says what it is, for the sender to resume from);
// data past MaxLog is dropped and the log marked truncated. It returns the
// new size.
func (s *Store) AppendLog(ctx context.Context, uuid string, attempt int, name string, pos int64, data []byte) (int64, error) {
	var size int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var trunc int
		err := tx.QueryRowContext(ctx, s.bind(`SELECT size, truncated FROM exec_log_files WHERE uuid = ? AND attempt = ? AND name = ?`),
			uuid, attempt, name).Scan(&size, &trunc)
		if errors.Is(err, sql.ErrNoRows) {
			size = 0
			if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO exec_log_files (uuid, attempt, name, size) VALUES (?, ?, ?, 0)`), uuid, attempt, name); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if pos != size {
			return &OffsetError{Size: size}
		}
		if len(data) == 0 {
			return nil
		}
		keep := data
		truncated := false
		if size+int64(len(keep)) > MaxLog {
			keep, truncated = keep[:max(0, MaxLog-size)], true
		}
		if len(keep) > 0 {
			if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO exec_log_chunks (uuid, attempt, name, pos, data) VALUES (?, ?, ?, ?, ?)`),
				uuid, attempt, name, size, keep); err != nil {
				return err
			}
		}
		// The sender's offsets go on counting what it sent, so that it
		// never sends the dropped part again.
		size += int64(len(data))
		_, err = tx.ExecContext(ctx, s.bind(`UPDATE exec_log_files SET size = ?, truncated = CASE WHEN ? THEN 1 ELSE truncated END
			WHERE uuid = ? AND attempt = ? AND name = ?`), size, truncated, uuid, attempt, name)
		return err
	})
	if err != nil {
		return size, err
	}
	s.notify()
	return size, nil
}

// ReadLog returns a log from pos on (at most max bytes) and its size.
func (s *Store) ReadLog(ctx context.Context, uuid string, attempt int, name string, pos int64, max int) ([]byte, int64, error) {
	var size int64
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT size FROM exec_log_files WHERE uuid = ? AND attempt = ? AND name = ?`), uuid, attempt, name).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT pos, data FROM exec_log_chunks WHERE uuid = ? AND attempt = ? AND name = ?
		AND pos >= (SELECT COALESCE(MAX(pos), 0) FROM exec_log_chunks WHERE uuid = ? AND attempt = ? AND name = ? AND pos <= ?)
		ORDER BY pos`), uuid, attempt, name, uuid, attempt, name, pos)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() && len(out) < max {
		var at int64
		var data []byte
		if err := rows.Scan(&at, &data); err != nil {
			return nil, 0, err
		}
		if at+int64(len(data)) <= pos {
			continue
		}
		if at < pos {
			data = data[pos-at:]
		}
		out = append(out, data...)
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, size, rows.Err()
}

// CloseLogs records that an attempt's logs are whole: its shipper sent
// everything.
func (s *Store) CloseLogs(ctx context.Context, uuid string, attempt int) error {
	if _, err := s.db.ExecContext(ctx, s.bind(`INSERT INTO exec_logs_closed (uuid, attempt) VALUES (?, ?) ON CONFLICT DO NOTHING`), uuid, attempt); err != nil {
		return err
	}
	s.notify()
	return nil
}

// logGrace is how long after an attempt ended its logs may still come in
// (the shipper sends the tail after the end's state change): past it, with
// no word from the shipper, they are taken as whole.
const logGrace = 30 * time.Second

// logsFinal tells whether an attempt's logs will get no more: its shipper
// closed them; or its worker was lost (a later attempt began while it ran);
// or it ended more than logGrace ago; or the execution is not there.
func (s *Store) logsFinal(ctx context.Context, uuid string, attempt int) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM exec_logs_closed WHERE uuid = ? AND attempt = ?`), uuid, attempt).Scan(&n)
	if err != nil || n > 0 {
		return n > 0, err
	}
	e, err := scanExecution(s.db.QueryRowContext(ctx, s.bind("SELECT "+executionColumns+" FROM exec_executions WHERE uuid = ?"), uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	over := e.Attempt > attempt || (e.Attempt == attempt && phase(e.State) >= 2)
	if !over {
		return false, nil
	}
	ended := e.Since
	var state, reason string
	var end sql.NullInt64
	err = s.db.QueryRowContext(ctx, s.bind(`SELECT state, reason, ended FROM exec_attempts WHERE uuid = ? AND attempt = ?`), uuid, attempt).Scan(&state, &reason, &end)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, err
	case state == contract.StateCrashed && strings.HasPrefix(reason, lostWorker):
		return true, nil
	case end.Valid:
		ended = time.UnixMicro(end.Int64)
	}
	return time.Since(ended) > logGrace, nil
}
