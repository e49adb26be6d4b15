package resultsdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// migration is one schema step: DDL for both dialects, then DDL for one.
// {{id}} becomes the dialect's auto-numbered primary key.
type migration struct{ both, sqlite, postgres string }

// migrations are applied in order, each once, recorded in schema_version.
// Never edit a released step: add a new one.
var migrations = []migration{
	// 1: the ResultsDB model (reference §6.4) with submit_time as UTC
	// microseconds, and an outbox for result events.
	{both: `CREATE TABLE testcase (
		id {{id}},
		name TEXT NOT NULL UNIQUE,
		ref_url TEXT
	);
	CREATE TABLE run_group (
		id {{id}},
		uuid TEXT NOT NULL UNIQUE,
		description TEXT,
		ref_url TEXT
	);
	CREATE INDEX run_group_description ON run_group (description);
	CREATE TABLE result (
		id {{id}},
		testcase_name TEXT NOT NULL REFERENCES testcase (name),
		submit_time BIGINT NOT NULL,
		outcome TEXT NOT NULL,
		note TEXT,
		ref_url TEXT
	);
	CREATE INDEX result_submit_time ON result (submit_time, id);
	CREATE INDEX result_testcase ON result (testcase_name, submit_time, id);
	CREATE INDEX result_outcome ON result (outcome, submit_time, id);
	CREATE TABLE result_group (
		group_id BIGINT NOT NULL REFERENCES run_group (id),
		result_id BIGINT NOT NULL REFERENCES result (id),
		PRIMARY KEY (group_id, result_id)
	);
	CREATE INDEX result_group_result ON result_group (result_id);
	CREATE TABLE result_data (
		id {{id}},
		result_id BIGINT NOT NULL REFERENCES result (id),
		key TEXT NOT NULL,
		value TEXT NOT NULL
	);
	CREATE INDEX result_data_key_value ON result_data (key, value, result_id);
	CREATE INDEX result_data_result ON result_data (result_id);
	CREATE TABLE outbox (
		id {{id}},
		result_id BIGINT NOT NULL,
		created BIGINT NOT NULL
	);`},
	// 2: a PostgreSQL B-tree entry holds at most about 2.7 kB, so long
	// data values and descriptions are indexed by their first 200
	// characters (queries match the prefix, then the whole value); the
	// pattern operators let LIKE 'prefix%' use the index.
	{postgres: `DROP INDEX result_data_key_value;
	CREATE INDEX result_data_key_value ON result_data (key, substr(value, 1, 200) text_pattern_ops, result_id);
	DROP INDEX run_group_description;
	CREATE INDEX run_group_description ON run_group (substr(description, 1, 200))`},
	// 3: _distinct_on looks up one key of one result; with only result_id
	// indexed, SQLite chose to scan the whole key instead.
	{
		sqlite: `DROP INDEX result_data_result;
		CREATE INDEX result_data_result ON result_data (result_id, key, value)`,
		postgres: `DROP INDEX result_data_result;
		CREATE INDEX result_data_result ON result_data (result_id, key)`,
	},
	// 4: outbox entries are leased by the publisher that sends them.
	{both: `ALTER TABLE outbox ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0`},
	// 5: every result records the system that submitted it; results from
	// before origins were known came through the one write token of the
	// time, the default origin. Each origin has write tokens of its own,
	// kept as hashes of their secrets.
	{both: `ALTER TABLE result ADD COLUMN origin TEXT NOT NULL DEFAULT 'taskotron';
	CREATE INDEX result_origin ON result (origin, submit_time, id);
	CREATE TABLE origin_token (
		id TEXT PRIMARY KEY,
		origin TEXT NOT NULL,
		secret_sha256 TEXT NOT NULL,
		created BIGINT NOT NULL,
		revoked BIGINT
	);
	CREATE INDEX origin_token_origin ON origin_token (origin)`},
}

func (s *sqlStore) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.dollar {
			// Two servers starting at once on one database take turns.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7484989)"); err != nil {
				return fmt.Errorf("lock for migration: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var version int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&version); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this program knows (%d): upgrade taskotron", version, len(migrations))
		}
		for v := version + 1; v <= len(migrations); v++ {
			m := migrations[v-1]
			ddl := m.both + ";" + m.sqlite
			if s.d.dollar {
				ddl = m.both + ";" + m.postgres
			}
			ddl = strings.ReplaceAll(ddl, "{{id}}", s.d.idColumn)
			for _, stmt := range strings.Split(ddl, ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", v, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.bind("INSERT INTO schema_version (version) VALUES (?)"), v); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	})
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("database folder %s: %w", dir, err)
		}
	}
	// case_sensitive_like matches PostgreSQL's LIKE (and lets LIKE use
	// indexes); _txlock=immediate takes the write lock at BEGIN, so a
	// transaction never fails halfway on a lock upgrade; a 64 MiB cache and
	// mmap keep a million results' indexes in memory.
	params := "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_pragma=case_sensitive_like(1)&_txlock=immediate" +
		"&_pragma=cache_size(-65536)&_pragma=mmap_size(1073741824)&_pragma=temp_store(MEMORY)" +
		"&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)"
	name := "file:" + (&url.URL{Path: path}).EscapedPath() + params
	read, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write, err := sql.Open("sqlite", name)
	if err != nil {
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	s := &sqlStore{d: sqliteDialect, read: read, write: write, notify: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// Fresh planner statistics, sampled so a big database opens quickly.
	for _, pragma := range []string{"PRAGMA analysis_limit=1000", "PRAGMA optimize=0x10002"} {
		if _, err := s.write.ExecContext(ctx, pragma); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite %s: %s: %w", path, pragma, err)
		}
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.checkpoint()
	s.startWriters(1)
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message shows the DSN with its password masked.
		return nil, &badDSN{msg: "database: " + err.Error(), err: err}
	}
	// pgx prepares each query once per connection. After five runs
	// PostgreSQL may switch a prepared query to a generic plan, made
	// without the values; data filter keys and values are parameters, so
	// such a plan cannot tell a rare item from type=koji_build and may
	// drive by the common one: 36 s instead of 0.8 ms for one latest-by-
	// item query at a million results. Planning with the values costs
	// about a millisecond. A plan_cache_mode in the DSN wins.
	// Writes are planned once: their plans do not depend on the values
	// (rows by unique keys, inserts from arrays), and the batch statement
	// (insertPostgres) takes 0.3 ms to plan, longer than it takes to run,
	// which PostgreSQL's own choice (plan_cache_mode auto) kept doing. So
	// writes have a pool of their own, with generic plans.
	writeCfg := cfg.Copy()
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set {
		cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
		writeCfg.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	wdb := stdlib.OpenDB(*writeCfg)
	wdb.SetMaxOpenConns(4)
	wdb.SetMaxIdleConns(4)
	s := &sqlStore{d: postgresDialect, read: db, write: wdb, notify: make(chan struct{}, 1)}
	closeBoth := func() { db.Close(); wdb.Close() }
	if err := s.reachable(ctx); err != nil {
		closeBoth()
		return nil, fmt.Errorf("postgres %s: %w", Redact(dsn), oneLine{err})
	}
	if err := s.migrate(ctx); err != nil {
		closeBoth()
		return nil, fmt.Errorf("postgres %s: %w", Redact(dsn), err)
	}
	// One writer, as on SQLite: while it commits, the next posts gather
	// into a bigger batch. Measured on 2 cores (BenchmarkResultsWrite, 16
	// clients): 1,170 posts/s with one writer, 1,010 with two, 740 with
	// four; other servers on the same database write beside it.
	s.startWriters(1)
	return s, nil
}

// checkpoint copies the SQLite write-ahead log into the database every
// second. SQLite would otherwise do it inside a committing request, whose
// answer then waits for the disk; a passive checkpoint never blocks
// writers or readers.
func (s *sqlStore) checkpoint() {
	defer close(s.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var busy, frames, done int
			err := s.read.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done)
			// A steady stream of writes never lets the log start over;
			// once it is long and all copied, start it over (this waits
			// for the writer, briefly).
			if err == nil && frames >= 16384 && done == frames {
				_, _ = s.write.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
			}
			cancel()
		}
	}
}

// oneLine shows an error on one line. pgx puts each address it tried to
// connect to on a line of its own, often the same line twice.
type oneLine struct{ err error }

func (e oneLine) Unwrap() error { return e.err }

func (e oneLine) Error() string {
	var parts []string
	for _, line := range strings.Split(e.err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && (len(parts) == 0 || parts[len(parts)-1] != line) {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}
