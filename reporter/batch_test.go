package reporter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/reporter"
)

// requestCounter counts the requests a ResultsDB got, by method and path;
// before, when set, may answer a request itself (true) instead of the
// server.
type requestCounter struct {
	h      http.Handler
	mu     sync.Mutex
	n      map[string]int
	before func(w http.ResponseWriter, r *http.Request, seen int) bool
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	seen := c.n[key]
	c.mu.Unlock()
	if c.before != nil && c.before(w, r, seen) {
		return
	}
	c.h.ServeHTTP(w, r)
}

func (c *requestCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

const (
	batchPost  = "POST /api/v2.0/results/batch"
	singlePost = "POST /api/v2.0/results"
)

// storedNotes are the notes of an execution's results in ResultsDB, in the
// order they were stored.
func storedNotes(t *testing.T, url, uuid string) []string {
	t.Helper()
	c, err := reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.GroupResults(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	id := func(r reporter.StoredResult) int {
		n, err := strconv.Atoi(r.ID)
		if err != nil {
			t.Fatalf("result id %q: %v", r.ID, err)
		}
		return n
	}
	sort.Slice(rs, func(i, j int) bool { return id(rs[i]) < id(rs[j]) })
	notes := make([]string, len(rs))
	for i, r := range rs {
		notes[i] = r.Note
	}
	return notes
}

func checkNotes(t *testing.T, got []string, e contract.Execution) {
	t.Helper()
	if len(got) != len(e.Results) {
		t.Fatalf("ResultsDB holds %d results of %d", len(got), len(e.Results))
	}
	for i, res := range e.Results {
		if got[i] != res.Note {
			t.Fatalf("stored result %d has note %q, want %q: lost, doubled or out of order", i, got[i], res.Note)
		}
	}
}

func TestReportInBatchesToOurResultsDB(t *testing.T) {
	_, h := ourResultsDB(t)
	rc := &requestCounter{h: h}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ctx := context.Background()
	n := 2*reporter.PostBatch + reporter.PostBatch/2
	e := exec("7d8f5c2e-0000-4000-8000-0000000ba701", n)
	d, err := newReporter(t, srv.URL).Deliver(ctx, e)
	if err != nil || d.Stored != n {
		t.Fatalf("delivery %+v %v", d, err)
	}
	if b, s := rc.count(batchPost), rc.count(singlePost); b != 3 || s != 0 {
		t.Errorf("%d results took %d batches and %d single posts; want 3 and 0", n, b, s)
	}
	checkNotes(t, storedNotes(t, srv.URL, e.UUID), e)

	// Another host reporting it again finds every result there.
	d, err = newReporter(t, srv.URL).Deliver(ctx, e)
	if err != nil || d.Present != n || d.Stored != 0 || rc.count(batchPost) != 3 {
		t.Fatalf("second delivery %+v %v, %d batches", d, err, rc.count(batchPost))
	}
}

func TestBatchRefusedGoesOneAtATime(t *testing.T) {
	_, h := ourResultsDB(t)
	rc := &requestCounter{h: h}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n, bad := 2*reporter.PostBatch+reporter.PostBatch/2, reporter.PostBatch+reporter.PostBatch/5
	e := exec("7d8f5c2e-0000-4000-8000-0000000ba702", n)
	// ResultsDB refuses a testcase name this long; the reporter does not
	// know that, so the second batch is refused whole, while the third
	// fills: its results go one at a time before the third is sent.
	e.Results[bad].CheckName = "dist." + strings.Repeat("x", 1000)
	d, err := newReporter(t, srv.URL).Deliver(context.Background(), e)
	if err != nil || d.Stored != n-1 || d.Rejected != 1 {
		t.Fatalf("delivery %+v %v; want %d stored, 1 rejected", d, err, n-1)
	}
	if b, s := rc.count(batchPost), rc.count(singlePost); b != 3 || s != reporter.PostBatch {
		t.Errorf("%d batches and %d single posts; want 3 (one refused) and the refused one's %d", b, s, reporter.PostBatch)
	}
	got := storedNotes(t, srv.URL, e.UUID)
	e.Results = append(e.Results[:bad], e.Results[bad+1:]...)
	checkNotes(t, got, e)
}

// TestBatchWhoseAnswerIsLost: the connection drops after the batch went
// out, once after ResultsDB stored it and once before; each result is
// stored exactly once.
func TestBatchWhoseAnswerIsLost(t *testing.T) {
	for _, stored := range []bool{true, false} {
		_, h := ourResultsDB(t)
		rc := &requestCounter{h: h}
		rc.before = func(w http.ResponseWriter, r *http.Request, seen int) bool {
			if r.URL.Path != "/api/v2.0/results/batch" || seen != 2 {
				return false
			}
			if stored {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return true
			}
			conn.Close()
			return true
		}
		srv := httptest.NewServer(rc)
		n := 2*reporter.PostBatch + reporter.PostBatch/3
		e := exec("7d8f5c2e-0000-4000-8000-0000000ba703", n)
		d, err := newReporter(t, srv.URL).Deliver(context.Background(), e)
		if err != nil || d.Stored != n || rc.count(batchPost) < 3 {
			t.Fatalf("stored before the loss %v: delivery %+v %v", stored, d, err)
		}
		checkNotes(t, storedNotes(t, srv.URL, e.UUID), e)
		srv.Close()
	}
}

// TestResultsDBWithoutBatches: ResultsDB 2.2 has no batches (404); the
// reporter asks once, then posts one result at a time.
func TestResultsDBWithoutBatches(t *testing.T) {
	_, h := ourResultsDB(t)
	rc := &requestCounter{h: h, before: func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.URL.Path == "/api/v2.0/results/batch" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message": "The requested URL was not found on the server."}`))
			return true
		}
		return false
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := newReporter(t, srv.URL)
	for _, uuid := range []string{"7d8f5c2e-0000-4000-8000-0000000ba704", "7d8f5c2e-0000-4000-8000-0000000ba705"} {
		e := exec(uuid, 120)
		d, err := r.Deliver(context.Background(), e)
		if err != nil || d.Stored != 120 {
			t.Fatalf("delivery %+v %v", d, err)
		}
		checkNotes(t, storedNotes(t, srv.URL, e.UUID), e)
	}
	if b, s := rc.count(batchPost), rc.count(singlePost); b != 1 || s != 240 {
		t.Errorf("%d batches asked for and %d single posts; want 1 and 240", b, s)
	}
}

// TestResultsDBGoesAwayWhileABatchIsInFlight: ResultsDB answers 503 to the
// second of three batches, posted while the third fills. That batch and
// every result after it go to the spool in order; once ResultsDB is back,
// a flush stores them, each once, in the order the task gave them.
func TestResultsDBGoesAwayWhileABatchIsInFlight(t *testing.T) {
	_, h := ourResultsDB(t)
	var away atomic.Bool
	rc := &requestCounter{h: h, before: func(w http.ResponseWriter, r *http.Request, seen int) bool {
		if r.URL.Path == "/api/v2.0/results/batch" && seen == 2 {
			away.Store(true)
		}
		if away.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"message": "down for maintenance"}`))
			return true
		}
		return false
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := newReporter(t, srv.URL)
	n := 2*reporter.PostBatch + reporter.PostBatch/2
	e := exec("7d8f5c2e-0000-4000-8000-0000000ba706", n)
	d, err := r.Deliver(context.Background(), e)
	if err != nil || d.Stored != reporter.PostBatch || d.Spooled != n-reporter.PostBatch {
		t.Fatalf("delivery %+v %v; want the first batch stored, the other %d results spooled", d, err, n-reporter.PostBatch)
	}
	// The second batch is tried twice (the client retries a 503 once:
	// RetryMax 1); the third is never sent, nor any result alone.
	if b, s := rc.count(batchPost), rc.count(singlePost); b != 3 || s != 0 {
		t.Errorf("%d batch requests and %d single posts while ResultsDB was away; want 3 and 0", b, s)
	}
	away.Store(false)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkNotes(t, storedNotes(t, srv.URL, e.UUID), e)
}
