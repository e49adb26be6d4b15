// Package resultsdbtest serves our ResultsDB for other packages' tests: a
// real server on a temporary SQLite file, over a real socket, accepting the
// ABORTED and CRASHED outcomes Taskotron reports, as production runs it;
// and, for benchmarks, a double that stores nothing (Counting).
package resultsdbtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/taskotron-go/taskotron/resultsdb"
)

// Start serves a fresh ResultsDB until the test ends and returns its root
// URL; the API is below URL + "/api/v2.0".
func Start(t testing.TB) string {
	t.Helper()
	store, err := resultsdb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "resultsdb.sqlite"))
	if err != nil {
		t.Fatalf("ResultsDB for the test: %v", err)
	}
	srv := httptest.NewServer(resultsdb.NewServer(store, resultsdb.Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}))
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	return srv.URL
}

// Counting is a ResultsDB double for benchmarks: it stores nothing and
// counts what it is sent, single posts and batches, answering as our
// ResultsDB does; with NoBatch it answers batches 404, as ResultsDB 2.2
// does. Every group it is asked about is empty. It reads each request's
// JSON through (a full syntax check, the first step of any server) but
// does not make Go values of it: on the machine of the client it measures,
// its CPU is the client's to lose.
type Counting struct {
	NoBatch bool
	// Requests counts the POSTs that stored results, Results the results.
	Requests, Results atomic.Int64
}

// StartCounting serves a Counting double until the test ends and returns
// it and its root URL.
func StartCounting(t testing.TB, noBatch bool) (*Counting, string) {
	c := &Counting{NoBatch: noBatch}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *Counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v2.0/groups/"):
		io.WriteString(w, `{"data": [], "next": null, "prev": null}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/results":
		var post json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&post); err != nil || post[0] != '{' {
			http.Error(w, `{"message": "bad"}`, http.StatusBadRequest)
			return
		}
		c.Requests.Add(1)
		c.Results.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id": 1}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/results/batch" && !c.NoBatch:
		var posts []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&posts); err != nil {
			http.Error(w, `{"message": "bad"}`, http.StatusBadRequest)
			return
		}
		c.Requests.Add(1)
		c.Results.Add(int64(len(posts)))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"data": []}`)
	default:
		http.Error(w, `{"message": "Not found"}`, http.StatusNotFound)
	}
}
