package resultsdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/redact"
)

// Store keeps testcases, groups and results. The server is its consumer;
// Open returns the SQL implementation for SQLite or PostgreSQL.
type Store interface {
	CreateResult(ctx context.Context, in NewResult) (Result, error)
	// CreateResults stores a batch in one transaction: all or none.
	CreateResults(ctx context.Context, batch []NewResult) ([]Result, error)
	Result(ctx context.Context, id int64) (Result, error)
	Results(ctx context.Context, q ResultQuery) ([]Result, error)
	// Latest returns, per testcase and per value of each distinctOn data
	// key, the newest result matching q (q.Outcomes, Offset, Limit unused).
	// A result with several values of a key competes under each of them;
	// one without the key, under no value.
	Latest(ctx context.Context, q ResultQuery, distinctOn []string) ([]Result, error)

	SaveGroup(ctx context.Context, g GroupUpdate) (Group, error)
	Group(ctx context.Context, uuid string) (Group, error)
	Groups(ctx context.Context, q GroupQuery) ([]Group, error)

	SaveTestcase(ctx context.Context, t TestcaseUpdate) (Testcase, error)
	Testcase(ctx context.Context, name string) (Testcase, error)
	Testcases(ctx context.Context, q TestcaseQuery) ([]Testcase, error)

	// PendingEvents lists up to limit outbox entries, oldest first.
	// ClaimEvents takes up to limit unclaimed ones for lease, so that
	// several servers on one database do not send the same message;
	// EventsSent removes them once the broker has confirmed them, and
	// what is not removed is claimed again when the lease ends.
	PendingEvents(ctx context.Context, limit int) ([]Event, error)
	ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]Event, error)
	EventsSent(ctx context.Context, ids []int64) error

	// The origins' write tokens.
	TokenStore

	// Ping checks that the database answers, with its tables.
	Ping(ctx context.Context) error
	Close() error
}

// ErrBadDSN marks a database name that is malformed, as opposed to a
// database that cannot be reached or opened: a command line reports the
// first as a usage error.
var ErrBadDSN = errors.New("malformed database name")

// badDSN is a malformed database name with what is wrong with it.
type badDSN struct {
	msg string
	err error // the parser's error, if any
}

func (e *badDSN) Error() string        { return e.msg }
func (e *badDSN) Unwrap() error        { return e.err }
func (e *badDSN) Is(target error) bool { return target == ErrBadDSN }

// Open opens (creating and migrating it when needed) the store named by
// dsn: "sqlite:PATH" or "postgres://…" (also "postgresql://…"). A
// malformed dsn gives an error that matches ErrBadDSN.
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, &badDSN{msg: fmt.Sprintf("database %q: sqlite needs a path, like sqlite:/var/lib/taskotron/resultsdb.sqlite", dsn)}
		}
		return openSQLite(ctx, path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	default:
		return nil, &badDSN{msg: fmt.Sprintf("database %q: want sqlite:PATH or postgres://…", Redact(dsn))}
	}
}

// Redact hides the password of a DSN or URL before it is shown.
func Redact(dsn string) string { return redact.URL(dsn) }
