package reporter

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResultsDB speaks the part of the ResultsDB API v2.0 the reporter
// uses, the way real ResultsDB 2.x answers: data values as lists,
// submit_time naive UTC, {"message": ...} errors, 201 on create.
type fakeResultsDB struct {
	mu      sync.Mutex
	results []map[string]any
	nextID  int
	// failPosts answers the next N POSTs with failStatus (default 503)
	// without storing.
	failPosts  int
	failStatus int
	// storeThenFail stores the next N POSTs and then answers 500 (as when
	// publishing the new-result message fails after the commit): the answer
	// is an error, the result is stored.
	storeThenFail int
	// rejectBody, when set, is the 400 body for testcases named reject.*.
	rejectBody string
	// poison, when set, makes every POST whose note holds it answer 500, as
	// a server that cannot store some content does.
	poison string
	posts  int
	token  string
}

var outcomes = map[string]bool{"PASSED": true, "INFO": true, "FAILED": true, "NEEDS_INSPECTION": true, "ABORTED": true, "CRASHED": true}

func (f *fakeResultsDB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/results":
		f.posts++
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			reply(401, map[string]string{"message": "Unauthorized"})
			return
		}
		if f.poison != "" {
			var body struct {
				Note string `json:"note"`
			}
			raw, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if json.Unmarshal(raw, &body) == nil && strings.Contains(body.Note, f.poison) {
				reply(http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
				return
			}
		}
		if f.failPosts > 0 {
			f.failPosts--
			status := cmp.Or(f.failStatus, http.StatusServiceUnavailable)
			reply(status, map[string]string{"message": http.StatusText(status)})
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(400, map[string]string{"message": "Bad request"})
			return
		}
		outcome, _ := body["outcome"].(string)
		if !outcomes[strings.ToUpper(strings.TrimSpace(outcome))] {
			reply(400, map[string]string{"message": "outcome must be one of (PASSED, INFO, FAILED, NEEDS_INSPECTION, ABORTED, CRASHED)"})
			return
		}
		tc, _ := body["testcase"].(map[string]any)
		name, _ := tc["name"].(string)
		if name == "" {
			reply(400, map[string]string{"message": "testcase.name not set"})
			return
		}
		if strings.HasPrefix(name, "reject.") && f.rejectBody != "" {
			w.WriteHeader(400)
			w.Write([]byte(f.rejectBody))
			return
		}
		data := map[string]any{}
		in, _ := body["data"].(map[string]any)
		for k, v := range in {
			if strings.Contains(k, ":") {
				reply(400, map[string]string{"message": fmt.Sprintf("Colon not allowed in key name: [%s]", k)})
				return
			}
			switch x := v.(type) {
			case []any:
				var vals []any
				for _, e := range x {
					vals = append(vals, fmt.Sprint(e))
				}
				data[k] = vals
			default:
				data[k] = []any{fmt.Sprint(x)}
			}
		}
		var groups []any
		gs, _ := body["groups"].([]any)
		for _, g := range gs {
			switch x := g.(type) {
			case string:
				groups = append(groups, x)
			case map[string]any:
				groups = append(groups, x["uuid"])
			}
		}
		f.nextID++
		res := map[string]any{
			"id": f.nextID, "groups": groups, "outcome": strings.ToUpper(outcome),
			"testcase":    map[string]any{"name": name, "ref_url": tc["ref_url"], "href": "http://x/api/v2.0/testcases/" + name},
			"note":        body["note"],
			"ref_url":     body["ref_url"],
			"data":        data,
			"submit_time": time.Now().UTC().Format("2006-01-02T15:04:05.000000"),
			"href":        fmt.Sprintf("http://x/api/v2.0/results/%d", f.nextID),
		}
		f.results = append(f.results, res)
		if f.storeThenFail > 0 {
			f.storeThenFail--
			reply(500, map[string]string{"message": "Internal Server Error"})
			return
		}
		reply(201, res)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v2.0/results":
		q := r.URL.Query()
		page, _ := strconv.Atoi(q.Get("page"))
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit <= 0 {
			limit = 20
		}
		var match []map[string]any
		for i := len(f.results) - 1; i >= 0; i-- { // newest first, as ResultsDB sorts
			res := f.results[i]
			if g := q.Get("groups"); g != "" {
				found := false
				for _, x := range res["groups"].([]any) {
					if x == g {
						found = true
					}
				}
				if !found {
					continue
				}
			}
			match = append(match, res)
		}
		start := min(page*limit, len(match))
		end := min(start+limit, len(match))
		var next any
		if end < len(match) {
			nq := r.URL.Query()
			nq.Set("page", strconv.Itoa(page+1))
			next = "http://" + r.Host + r.URL.Path + "?" + nq.Encode()
		}
		reply(200, map[string]any{"prev": nil, "next": next, "data": match[start:end]})
	default:
		reply(404, map[string]string{"message": "Not found"})
	}
}

// count returns how many stored results belong to a group.
func (f *fakeResultsDB) count(uuid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.results {
		for _, g := range r["groups"].([]any) {
			if g == uuid {
				n++
			}
		}
	}
	return n
}

func (f *fakeResultsDB) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.results)
}

// refusingListener resets the first n connections it accepts, as a
// ResultsDB that is down (or restarting behind a proxy) does.
type refusingListener struct {
	net.Listener
	mu      sync.Mutex
	refuse  int
	refused int
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		drop := l.refuse > 0
		if drop {
			l.refuse--
			l.refused++
		}
		l.mu.Unlock()
		if !drop {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not a polite FIN
		}
		c.Close()
	}
}

// httptestServer serves f on a plain test server.
func httptestServer(f *fakeResultsDB) *httptest.Server { return httptest.NewServer(f) }

// refusedCount is how many connections were reset so far.
func (l *refusingListener) refusedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// startFake serves f; refuse > 0 resets that many connections first.
func startFake(t *testing.T, f *fakeResultsDB, refuse int) (*httptest.Server, *refusingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}
	rl := &refusingListener{Listener: ln, refuse: refuse}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = rl
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, rl
}

// serveAt serves f on a fixed address (to come back after an outage).
func serveAt(t *testing.T, addr string, f http.Handler) *http.Server {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: f}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return srv
}
