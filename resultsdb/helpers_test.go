package resultsdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresURL is the test database; RESULTSDB_TEST_POSTGRES overrides it.
func postgresURL() string {
	if u := os.Getenv("RESULTSDB_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// openTestStore opens a fresh store of the given kind: a new SQLite file,
// or a new schema in the PostgreSQL test database, dropped afterwards.
func openTestStore(t testing.TB, kind string) Store {
	t.Helper()
	s, _ := openTestStoreDSN(t, kind)
	return s
}

// openTestStoreDSN is openTestStore that also tells the DSN it opened.
func openTestStoreDSN(t testing.TB, kind string) (Store, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch kind {
	case "sqlite":
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "resultsdb.sqlite")
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open sqlite store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s, dsn
	case "postgres":
		dsn := postgresURL()
		schema := randomName("rdbtest_")
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("PostgreSQL is needed for this test and is not reachable at %s (set RESULTSDB_TEST_POSTGRES): %v", dsn, err)
		}
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			conn.Close(ctx)
			t.Fatalf("create schema %s in %s: %v", schema, dsn, err)
		}
		conn.Close(ctx)
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "search_path=" + schema
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open postgres store: %v", err)
		}
		t.Cleanup(func() {
			s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if conn, err := pgx.Connect(ctx, postgresURL()); err == nil {
				_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
				conn.Close(ctx)
			}
		})
		return s, dsn
	}
	t.Fatalf("unknown store kind %q", kind)
	return nil, ""
}

var storeKinds = []string{"sqlite", "postgres"}

// client talks to a test server over a real socket.
type client struct {
	t    *testing.T
	base string
	// token is sent as a bearer token when set.
	token string
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (r response) text() string { return string(r.body) }

func (r response) message(t *testing.T) string {
	t.Helper()
	m, _ := r.json(t)["message"].(string)
	return m
}

// list returns the "data" list of a response.
func (r response) list(t *testing.T) []map[string]any {
	t.Helper()
	raw, ok := r.json(t)["data"].([]any)
	if !ok {
		t.Fatalf("response has no data list: %s", r.body)
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func (c *client) do(method, path string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{code: resp.StatusCode, body: raw, header: resp.Header}
}

func (c *client) get(path string) response { return c.do("GET", path, nil) }

func (c *client) post(path string, body any) response { return c.do("POST", path, body) }

// mustPost posts and insists on 201.
func (c *client) mustPost(path string, body any) map[string]any {
	c.t.Helper()
	r := c.post(path, body)
	if r.code != http.StatusCreated {
		c.t.Fatalf("POST %s: status %d, want 201: %s", path, r.code, r.body)
	}
	return r.json(c.t)
}

// startServer serves store over a real socket with the given options; the
// BaseURL is the server's own address unless opts sets one.
func startServer(t *testing.T, store Store, opts Options) *client {
	t.Helper()
	var h http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	srv.Start()
	t.Cleanup(srv.Close)
	if opts.BaseURL == "" {
		opts.BaseURL = srv.URL
	}
	h = NewServer(store, opts)
	return &client{t: t, base: srv.URL}
}

// eachStore runs fn once per store kind, each on a fresh store and server.
func eachStore(t *testing.T, opts Options, fn func(t *testing.T, c *client, store Store)) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store := openTestStore(t, kind)
			c := startServer(t, store, opts)
			c.t = t
			fn(t, c, store)
		})
	}
}

func ids(t *testing.T, list []map[string]any) []int {
	t.Helper()
	out := make([]int, len(list))
	for i, m := range list {
		out[i] = int(m["id"].(float64))
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
