// Package sqldbtest gives a test a PostgreSQL database of its own: a fresh
// schema in the test database (RESULTSDB_TEST_POSTGRES, or the local
// server's test database), dropped when the test ends. A test that needs
// PostgreSQL fails, naming the address, when it cannot be reached. It
// imports nothing of the project.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the test database.
func PostgresURL() string {
	if u := os.Getenv("RESULTSDB_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

// FreshSchema makes a schema named prefix_<random> and returns the DSN
// that uses it. Stores opened on it should be closed by a cleanup
// registered after this call, so that they close before the drop.
func FreshSchema(tb testing.TB, prefix string) string {
	tb.Helper()
	ctx := context.Background()
	dsn := PostgresURL()
	b := make([]byte, 6)
	rand.Read(b)
	schema := prefix + "_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("PostgreSQL is needed for this test and is not reachable at %s (set RESULTSDB_TEST_POSTGRES): %v", dsn, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
