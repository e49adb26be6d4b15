// Package execdb keeps every job's execution record at the centre, from the
// moment the trigger queues it to its last result (Taskotron's ExecDB,
// KernelCI's node states): its state, every attempt, the timeline of state
// changes, and its live logs. store.go keeps them (SQLite embedded,
// PostgreSQL in production), api.go and pages.go serve them, client.go and
// outbox.go and ship.go are what the trigger and the workers report through
// (state changes, live logs, artifacts), so that a central server away never
// blocks a job nor loses a state change. It imports contract, httpclient,
// redact and sqldb.
package execdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/sqldb"

	_ "modernc.org/sqlite"

	"github.com/taskotron-go/taskotron/contract"
)

// Execution is one job's record: what it is, where it is now, and how it
// ended.
type Execution struct {
	UUID     string    `json:"uuid"`
	Item     string    `json:"item"`
	ItemType string    `json:"item_type"`
	TaskName string    `json:"taskname"`
	Arch     string    `json:"arch"`
	Priority int       `json:"priority"`
	MsgID    string    `json:"msg_id,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Created  time.Time `json:"created"`
	State    string    `json:"state"`
	// Attempt is the attempt the state is about (0 while first queued).
	Attempt int        `json:"attempt"`
	Since   time.Time  `json:"since"`
	Worker  string     `json:"worker,omitempty"`
	Action  string     `json:"action,omitempty"`
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	// ExecutionStatus, Outcome (the worst result's) and Results are set
	// once it ended.
	ExecutionStatus string     `json:"execution_status,omitempty"`
	Outcome         string     `json:"outcome,omitempty"`
	Results         int        `json:"results"`
	Started         *time.Time `json:"started,omitempty"`
	Finished        *time.Time `json:"finished,omitempty"`
}

// Attempt is one run of an execution.
type Attempt struct {
	Attempt         int        `json:"attempt"`
	State           string     `json:"state"`
	Worker          string     `json:"worker,omitempty"`
	Started         *time.Time `json:"started,omitempty"`
	Ended           *time.Time `json:"ended,omitempty"`
	Reason          string     `json:"reason,omitempty"`
	ExecutionStatus string     `json:"execution_status,omitempty"`
	Outcome         string     `json:"outcome,omitempty"`
	Results         int        `json:"results"`
}

// Attempt states besides the execution states: an attempt that ended on
// infrastructure and was tried again.
const attemptRetried = "retried"

// Detail is an execution with its history.
type Detail struct {
	Execution
	Attempts []Attempt                 `json:"attempts"`
	Timeline []contract.ExecutionEvent `json:"timeline"`
	Logs     []LogFile                 `json:"logs"`
}

// LogFile is one log of one attempt, as far as it has arrived.
type LogFile struct {
	Attempt int    `json:"attempt"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	// Truncated: the log went past the ceiling and the rest was dropped.
	Truncated bool `json:"truncated,omitempty"`
}

// Query selects executions, newest first.
type Query struct {
	States   []string
	Item     string
	TaskName string
	Arch     string
	Since    time.Time
	Offset   int
	Limit    int
}

// phase orders the states of one attempt: a later event of a lower phase
// (a queued event that arrives after the run started) does not take the
// state back.
func phase(state string) int {
	switch state {
	case contract.StateQueued:
		return 0
	case contract.StateRunning:
		return 1
	case contract.StateWaitingRetry:
		return 2
	}
	return 3 // finished, crashed, aborted
}

func terminal(state string) bool { return phase(state) == 3 }

// States lists the execution states, for validation and filters.
var States = []string{contract.StateQueued, contract.StateRunning, contract.StateWaitingRetry, contract.StateFinished, contract.StateCrashed, contract.StateAborted}

func knownState(s string) bool {
	for _, k := range States {
		if k == s {
			return true
		}
	}
	return false
}

// MaxLog is how much of one log file is kept; the rest is dropped.
const MaxLog = 32 << 20

// ErrNotFound is an execution or log that is not there.
var ErrNotFound = errors.New("not found")

// OffsetError is an append at a position that is not the log's end: the
// sender resumes from Size.
type OffsetError struct{ Size int64 }

func (e *OffsetError) Error() string {
	return fmt.Sprintf("the log holds %d bytes: append from there", e.Size)
}

// Store keeps execution records in SQLite or PostgreSQL.
type Store struct {
	db       *sql.DB
	postgres bool
	metrics  *Metrics

	// changed wakes readers that follow a log or a state: one channel per
	// store, closed and replaced on every change (a broadcast).
	mu      sync.Mutex
	changed chan struct{}
}

// Open opens (creating its tables when needed) the store named by dsn:
// "sqlite:PATH" or "postgres://…".
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{changed: make(chan struct{})}
	var err error
	if s.db, s.postgres, err = sqldb.Open(dsn, "executions database", "NORMAL"); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("executions database: %w", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	blob := "BLOB"
	if s.postgres {
		blob = "BYTEA"
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS exec_executions (
			uuid TEXT PRIMARY KEY,
			item TEXT NOT NULL DEFAULT '', item_type TEXT NOT NULL DEFAULT '', taskname TEXT NOT NULL DEFAULT '',
			arch TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 0, msg_id TEXT NOT NULL DEFAULT '',
			rule TEXT NOT NULL DEFAULT '', created BIGINT NOT NULL,
			state TEXT NOT NULL, attempt INTEGER NOT NULL, phase INTEGER NOT NULL, since BIGINT NOT NULL,
			worker TEXT NOT NULL DEFAULT '', action TEXT NOT NULL DEFAULT '', retry_at BIGINT, reason TEXT NOT NULL DEFAULT '',
			execution_status TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL DEFAULT '', results INTEGER NOT NULL DEFAULT 0,
			started BIGINT, finished BIGINT)`,
		`CREATE INDEX IF NOT EXISTS exec_state_idx ON exec_executions (state, priority, created)`,
		`CREATE INDEX IF NOT EXISTS exec_created_idx ON exec_executions (created)`,
		`CREATE INDEX IF NOT EXISTS exec_item_idx ON exec_executions (item, created)`,
		`CREATE TABLE IF NOT EXISTS exec_attempts (
			uuid TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, phase INTEGER NOT NULL, since BIGINT NOT NULL,
			worker TEXT NOT NULL DEFAULT '', started BIGINT, ended BIGINT, reason TEXT NOT NULL DEFAULT '',
			execution_status TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL DEFAULT '', results INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (uuid, attempt))`,
		`CREATE TABLE IF NOT EXISTS exec_events (
			id TEXT PRIMARY KEY, uuid TEXT NOT NULL, time BIGINT NOT NULL, body TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS exec_events_uuid_idx ON exec_events (uuid, time)`,
		`CREATE TABLE IF NOT EXISTS exec_log_files (
			uuid TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL, truncated INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (uuid, attempt, name))`,
		// An attempt's logs are closed when its shipper has sent them all.
		`CREATE TABLE IF NOT EXISTS exec_logs_closed (
			uuid TEXT NOT NULL, attempt INTEGER NOT NULL, PRIMARY KEY (uuid, attempt))`,
		`CREATE TABLE IF NOT EXISTS exec_log_chunks (
			uuid TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL, pos BIGINT NOT NULL, data ` + blob + ` NOT NULL,
			PRIMARY KEY (uuid, attempt, name, pos))`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// bind turns ? placeholders into PostgreSQL's $n.
func (s *Store) bind(q string) string { return sqldb.Bind(s.postgres, q) }

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// notify wakes whoever follows a log or a state.
func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Changed is closed at the next change.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
