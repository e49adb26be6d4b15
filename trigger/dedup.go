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
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"taskotron/contract"
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
type SQLStore struct {
	db     *sql.DB
	mu     sync.Mutex // SQLite allows one writer; keeps Go from queueing on busy
	pg     bool
	claims int
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
		s.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err == nil {
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dedup state %s: %w", redact(dsn), err)
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS trigger_messages (msg_id TEXT PRIMARY KEY, state TEXT NOT NULL, jobs TEXT NOT NULL, at BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS trigger_keys (key TEXT PRIMARY KEY, msg_id TEXT NOT NULL, at BIGINT NOT NULL)`,
	} {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("dedup state %s: %w", redact(dsn), err)
		}
	}
	return s, nil
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
func (s *SQLStore) Close() error { return s.db.Close() }

func storedKey(j contract.Job) string {
	sum := sha256.Sum256([]byte(Key(j)))
	return hex.EncodeToString(sum[:])
}

// Claim implements DedupStore.
func (s *SQLStore) Claim(ctx context.Context, msgID string, jobs []contract.Job, now time.Time, window time.Duration) (ClaimResult, error) {
	if !s.pg {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	var res ClaimResult
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	if msgID != "" {
		var state, recorded string
		err := tx.QueryRowContext(ctx, `SELECT state, jobs FROM trigger_messages WHERE msg_id = $1`, msgID).Scan(&state, &recorded)
		switch {
		case err == nil:
			res.Seen = state
			if state == "pending" {
				if err := json.Unmarshal([]byte(recorded), &res.Jobs); err != nil {
					return res, fmt.Errorf("message %s: recorded jobs: %w", msgID, err)
				}
			}
			return res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return res, err
		}
	}
	at := now.UnixNano()
	cutoff := now.Add(-window).UnixNano()
	for _, j := range jobs {
		var owner string
		err := tx.QueryRowContext(ctx, `INSERT INTO trigger_keys (key, msg_id, at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET msg_id = excluded.msg_id, at = excluded.at WHERE trigger_keys.at < $4
			RETURNING msg_id`, storedKey(j), msgID, at, cutoff).Scan(&owner)
		switch {
		case err == nil:
			res.Jobs = append(res.Jobs, j)
		case errors.Is(err, sql.ErrNoRows):
			res.Duplicates = append(res.Duplicates, j)
		default:
			return res, err
		}
	}
	if msgID != "" {
		recorded, err := json.Marshal(orEmpty(res.Jobs))
		if err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO trigger_messages (msg_id, state, jobs, at) VALUES ($1, 'pending', $2, $3)
			ON CONFLICT (msg_id) DO NOTHING`, msgID, string(recorded), at); err != nil {
			return res, err
		}
	}
	s.claims++
	if s.claims%1000 == 1 {
		// Forget what is older than anything dedup still needs.
		if _, err := tx.ExecContext(ctx, `DELETE FROM trigger_keys WHERE at < $1`, cutoff); err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM trigger_messages WHERE at < $1`, now.Add(-MessageRetention).UnixNano()); err != nil {
			return res, err
		}
	}
	return res, tx.Commit()
}

func orEmpty(j []contract.Job) []contract.Job {
	if j == nil {
		return []contract.Job{}
	}
	return j
}

// Done implements DedupStore.
func (s *SQLStore) Done(ctx context.Context, msgID string) error {
	if msgID == "" {
		return nil
	}
	if !s.pg {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE trigger_messages SET state = 'done', jobs = '[]' WHERE msg_id = $1`, msgID)
	return err
}
