package trigger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/taskotron-go/taskotron/contract"
)

// ClaimResult is what a dedup store says about a message's jobs.
type ClaimResult struct {
	// Jobs are the jobs to queue.
	Jobs []contract.Job
	// Duplicates were dropped: their key was scheduled within the window.
	Duplicates []contract.Job
	// Seen is "" for a new message, "pending" when the message was handled
	// before but not committed (Jobs are the ones recorded then, same uuids),
	// and "done" when its jobs were queued already (Jobs is empty).
	Seen string
}

// DedupStore remembers handled messages and scheduled job keys, across
// restarts. It is what makes redelivery harmless.
type DedupStore interface {
	// Claim records a message as pending with its jobs, minus those whose
	// {item, item_type, taskname, arch} was claimed within window. An empty
	// msgID skips the message part.
	Claim(ctx context.Context, msgID string, jobs []contract.Job, now time.Time, window time.Duration) (ClaimResult, error)
	// Done marks a message's jobs as durably queued.
	Done(ctx context.Context, msgID string) error
}

// MessageRetention is how long handled message ids are remembered:
// redeliveries come within minutes, replays of a job log within days.
const MessageRetention = 7 * 24 * time.Hour

// SQLStore is a DedupStore on SQLite (embedded default) or PostgreSQL.
//
// On PostgreSQL every call is a transaction, so several triggers can share
// the state. On SQLite the store is meant for one trigger process: it keeps
// the state in memory and the database is an append-only journal of it, and
// one goroutine group-commits every waiting Claim and Done in one
// transaction (SQLite has one writer; appending touches the last pages of
// one b-tree however many rows a commit holds).
type SQLStore struct {
	db     *sql.DB
	pg     bool
	claims atomic.Int64
	// maxWindow is the longest window asked for (nanoseconds): pruning
	// by a shorter one would forget keys another kind of job still needs.
	maxWindow atomic.Int64

	// SQLite only.
	reqs  chan storeReq
	quit  chan struct{}
	done  chan struct{}
	index liteIndex
	stmts map[int]*sql.Stmt // journal inserts by row count
}

type storeReq struct {
	ctx    context.Context
	done   bool // a Done call, else a Claim
	msgID  string
	jobs   []contract.Job
	now    time.Time
	window time.Duration
	reply  chan storeReply
}

type storeReply struct {
	res ClaimResult
	err error
}

// OpenDedup opens a store: "sqlite:PATH" (or a bare path) or
// "postgres://…" / "postgresql://…". It creates its tables.
func OpenDedup(ctx context.Context, dsn string) (*SQLStore, error) {
	s := &SQLStore{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.pg = true
		s.db, err = sql.Open("pgx", dsn)
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("dedup state: empty sqlite path")
		}
		s.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(2000)&_pragma=locking_mode(EXCLUSIVE)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(10000)&_pragma=cache_size(-32000)")
		if err == nil {
			// One connection, held: the file is this process's (exclusive
			// locking also spares WAL's shared-memory lock calls).
			s.db.SetMaxOpenConns(1)
			s.db.SetConnMaxLifetime(0)
			s.db.SetMaxIdleConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dedup state %s: %w", redact(dsn), err)
	}
	if s.pg {
		err = s.createPostgres(ctx)
	} else {
		err = s.openJournal(ctx)
	}
	if err != nil {
		s.db.Close()
		if !s.pg && strings.Contains(err.Error(), "locked") {
			return nil, fmt.Errorf("dedup state %s: in use by another process (one trigger per SQLite state; share a PostgreSQL state_db instead): %w", dsn, err)
		}
		return nil, fmt.Errorf("dedup state %s: %w", redact(dsn), err)
	}
	if !s.pg {
		s.reqs, s.quit, s.done = make(chan storeReq), make(chan struct{}), make(chan struct{})
		go s.writer()
	}
	return s, nil
}

func (s *SQLStore) createPostgres(ctx context.Context) error {
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS trigger_messages (msg_id TEXT PRIMARY KEY, state TEXT NOT NULL, jobs TEXT NOT NULL, at BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS trigger_keys (key TEXT PRIMARY KEY, msg_id TEXT NOT NULL, at BIGINT NOT NULL)`,
	} {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// queries are the PostgreSQL store's statements.
var queries = map[string]string{
	"lookup": `SELECT state, jobs FROM trigger_messages WHERE msg_id = $1`,
	"claimKey": `INSERT INTO trigger_keys (key, msg_id, at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET msg_id = excluded.msg_id, at = excluded.at WHERE trigger_keys.at < $4
		RETURNING msg_id`,
	"record":    `INSERT INTO trigger_messages (msg_id, state, jobs, at) VALUES ($1, 'pending', $2, $3) ON CONFLICT (msg_id) DO NOTHING`,
	"done":      `UPDATE trigger_messages SET state = 'done', jobs = '[]' WHERE msg_id = $1`,
	"pruneKeys": `DELETE FROM trigger_keys WHERE at < $1`,
	"pruneMsgs": `DELETE FROM trigger_messages WHERE at < $1`,
}

// redact hides a password in a postgres URL for messages.
func redact(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at > 0 {
		if i := strings.Index(dsn, "://"); i > 0 && i < at {
			if c := strings.Index(dsn[i+3:at], ":"); c >= 0 {
				return dsn[:i+3+c] + ":***" + dsn[at:]
			}
		}
	}
	return dsn
}

// Close closes the database.
func (s *SQLStore) Close() error {
	if s.quit != nil {
		close(s.quit)
		<-s.done
		for _, st := range s.stmts {
			st.Close()
		}
	}
	return s.db.Close()
}

// keyHash is a job's dedup key at a fixed size.
func keyHash(j contract.Job) [sha256.Size]byte { return sha256.Sum256([]byte(Key(j))) }

func storedKey(j contract.Job) string {
	sum := keyHash(j)
	return hex.EncodeToString(sum[:])
}

// Claim implements DedupStore.
func (s *SQLStore) Claim(ctx context.Context, msgID string, jobs []contract.Job, now time.Time, window time.Duration) (ClaimResult, error) {
	r := storeReq{ctx: ctx, msgID: msgID, jobs: jobs, now: now, window: window}
	if s.pg {
		return s.inTx(ctx, r)
	}
	return s.submit(r)
}

// Done implements DedupStore.
func (s *SQLStore) Done(ctx context.Context, msgID string) error {
	if msgID == "" {
		return nil
	}
	r := storeReq{ctx: ctx, done: true, msgID: msgID}
	var err error
	if s.pg {
		_, err = s.inTx(ctx, r)
	} else {
		_, err = s.submit(r)
	}
	return err
}

func (s *SQLStore) submit(r storeReq) (ClaimResult, error) {
	r.reply = make(chan storeReply, 1)
	select {
	case s.reqs <- r:
	case <-r.ctx.Done():
		return ClaimResult{}, r.ctx.Err()
	case <-s.quit:
		return ClaimResult{}, errors.New("dedup store closed")
	}
	rep := <-r.reply
	return rep.res, rep.err
}

func (s *SQLStore) inTx(ctx context.Context, r storeReq) (ClaimResult, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ClaimResult{}, err
	}
	defer tx.Rollback()
	res, err := s.apply(ctx, tx, r)
	if err != nil {
		return res, err
	}
	return res, tx.Commit()
}

func (s *SQLStore) exec(ctx context.Context, tx *sql.Tx, name string, args ...any) error {
	_, err := tx.ExecContext(ctx, queries[name], args...)
	return err
}

func (s *SQLStore) queryRow(ctx context.Context, tx *sql.Tx, name string, args ...any) *sql.Row {
	return tx.QueryRowContext(ctx, queries[name], args...)
}

// apply runs one Claim or Done inside tx (PostgreSQL).
func (s *SQLStore) apply(ctx context.Context, tx *sql.Tx, r storeReq) (ClaimResult, error) {
	ctx = context.WithoutCancel(ctx) // a batch is not undone by one caller leaving
	var res ClaimResult
	if r.done {
		return res, s.exec(ctx, tx, "done", r.msgID)
	}
	if r.msgID != "" {
		var state, recorded string
		err := s.queryRow(ctx, tx, "lookup", r.msgID).Scan(&state, &recorded)
		switch {
		case err == nil:
			res.Seen = state
			if state == "pending" {
				if err := json.Unmarshal([]byte(recorded), &res.Jobs); err != nil {
					return res, fmt.Errorf("message %s: recorded jobs: %w", r.msgID, err)
				}
			}
			return res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return res, err
		}
	}
	at := r.now.UnixNano()
	cutoff := r.now.Add(-r.window).UnixNano()
	for _, j := range r.jobs {
		var owner string
		err := s.queryRow(ctx, tx, "claimKey", storedKey(j), r.msgID, at, cutoff).Scan(&owner)
		switch {
		case err == nil:
			res.Jobs = append(res.Jobs, j)
		case errors.Is(err, sql.ErrNoRows):
			res.Duplicates = append(res.Duplicates, j)
		default:
			return res, err
		}
	}
	if r.msgID != "" {
		recorded, err := contract.MarshalList(res.Jobs) // "[]" for none
		if err != nil {
			return res, err
		}
		if err := s.exec(ctx, tx, "record", r.msgID, string(recorded), at); err != nil {
			return res, err
		}
	}
	s.noteWindow(r.window)
	if s.claims.Add(1)%1000 == 1 {
		// Forget what is older than anything dedup still needs.
		if err := s.exec(ctx, tx, "pruneKeys", r.now.Add(-time.Duration(s.maxWindow.Load())).UnixNano()); err != nil {
			return res, err
		}
		if err := s.exec(ctx, tx, "pruneMsgs", r.now.Add(-MessageRetention).UnixNano()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// noteWindow remembers the longest window asked for.
func (s *SQLStore) noteWindow(w time.Duration) {
	for {
		cur := s.maxWindow.Load()
		if int64(w) <= cur || s.maxWindow.CompareAndSwap(cur, int64(w)) {
			return
		}
	}
}
