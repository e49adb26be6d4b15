// Package sqldb opens the database of one of the project's small stores
// (executions, labs, notifications) from one DSN, sqlite:PATH or
// postgres://…, and writes its queries' placeholders for it. ResultsDB has
// its own tuned opening (resultsdb/migrate.go). It imports nothing of the
// project.
package sqldb

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// Open opens dsn for the store that what names in errors ("labs
// database"). synchronous is SQLite's pragma: NORMAL where a crash of the
// machine may lose the last commits, FULL where it may not.
func Open(dsn, what, synchronous string) (db *sql.DB, postgres bool, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if path == "" {
			return nil, false, fmt.Errorf("%s %q: sqlite needs a path", what, dsn)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, false, fmt.Errorf("%s folder: %w", what, err)
		}
		params := "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(" + synchronous + ")&_txlock=immediate"
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+params)
		if err != nil {
			return nil, false, fmt.Errorf("%s %s: %w", what, path, err)
		}
		// SQLite writes one at a time anyway, and readers of the WAL do
		// not wait for the writer.
		db.SetMaxOpenConns(4)
		return db, false, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's message shows the DSN with its password masked.
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(8)
		return db, true, nil
	}
	return nil, false, errors.New(what + ": want sqlite:PATH or postgres://…")
}

// Bind turns the ? placeholders of q into PostgreSQL's $n when postgres.
// Queries never hold a literal '?': values are parameters.
func Bind(postgres bool, q string) string {
	if !postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
