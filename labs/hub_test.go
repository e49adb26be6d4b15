package labs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
	"github.com/taskotron-go/taskotron/runner"
)

const helloTask = `name: hello
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'echo working on "$$0"; mkdir -p "$$1/out"; echo data > "$$1/out/file.txt"; printf "TAP version 13\n1..1\nok 1 - hello\n  ---\n  item: %s\n  type: koji_build\n  artifact: %s\n  ...\n" "$$0" "$$1/out/file.txt"', "${item}", "${artifactsdir}"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`

type testHub struct {
	hub     *Hub
	url     string
	store   *Store
	execs   *execdb.Store
	results *reporter.ResultsDBClient
	cfg     config.Config
}

// startHub serves a hub as the central server does: its store on SQLite,
// the executions store, a real ResultsDB, a task mirror with "hello".
func startHub(t *testing.T, lease time.Duration, kind string) *testHub {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "hub")
	cfg = cfg.Resolved()
	tasks := filepath.Join(dir, "tasks")
	os.MkdirAll(filepath.Join(tasks, "hello"), 0o755)
	os.WriteFile(filepath.Join(tasks, "hello", "runtask.yml"), []byte(helloTask), 0o644)
	if err := checkout.Seed(tasks, cfg.Runner.Mirror); err != nil {
		t.Fatal(err)
	}
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rdb := resultsdbtest.Start(t)
	rep, err := reporter.New(reporter.Options{ResultsDBURL: rdb + "/api/v2.0", SpoolDir: filepath.Join(dir, "spool"), ArtifactsURL: "http://hub/artifacts"})
	if err != nil {
		t.Fatal(err)
	}
	client, err := reporter.NewResultsDBClient(rdb+"/api/v2.0", reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	execs, err := execdb.Open(context.Background(), "sqlite:"+filepath.Join(dir, "executions.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { execs.Close() })
	store := openTestStore(t, kind)
	h := NewHub(HubOptions{Store: store, Execs: execs, Reporter: rep, Checkout: co, ArtifactsDir: cfg.Runner.ArtifactsDir,
		AdminToken: "admin-secret", LeaseTimeout: lease, PollWait: 2 * time.Second, MaxAttempts: 3})
	mux := http.NewServeMux()
	execdb.NewHandler(execs, execdb.Options{Token: "admin-secret", AuthorizeLog: h.AuthorizeLog}).Mount(mux)
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return &testHub{hub: h, url: srv.URL, store: store, execs: execs, results: client, cfg: cfg}
}

func (th *testHub) token(t *testing.T, lab string) string {
	t.Helper()
	tok, err := th.store.AddToken(context.Background(), lab)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (th *testHub) client(t *testing.T, token string) *Client {
	t.Helper()
	c, err := NewClient(th.url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (th *testHub) put(t *testing.T, reqs ...NewRequest) []Request {
	t.Helper()
	got, err := th.client(t, "admin-secret").Put(context.Background(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (th *testHub) stored(t *testing.T, uuid string) []reporter.StoredResult {
	t.Helper()
	rs, err := th.results.GroupResults(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hello(where Labels) NewRequest {
	return NewRequest{TaskName: "hello", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Where: where}
}

// TestAgentRunsARequestEndToEnd: an agent in this process takes a request,
// runs the task from the hub's mirror with the runner, ships its log, and
// the hub stores its artifacts, one result in ResultsDB and every state
// in the execution record.
func TestAgentRunsARequestEndToEnd(t *testing.T) {
	th := startHub(t, 5*time.Second, "sqlite")
	tok := th.token(t, "lab-a")
	labCfg := config.Default()
	labCfg.DataDir = filepath.Join(t.TempDir(), "lab")
	ran := make(chan RunAnswer, 1)
	a, err := NewAgent(AgentOptions{Hub: th.url, Token: tok, Labels: Labels{"cpu": "cortex-a9"}, Config: labCfg, PollWait: time.Second,
		OnRun: func(_ Request, ans RunAnswer) { ran <- ans }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	r := th.put(t, hello(Labels{"cpu": "cortex-a9"}))[0]
	var ans RunAnswer
	select {
	case ans = <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not run the request")
	}
	if ans.State != StateFinished || ans.Outcome != "PASSED" || ans.Results != 1 {
		t.Errorf("answer %+v", ans)
	}
	rs := th.stored(t, r.ID)
	if len(rs) != 1 || rs[0].Outcome != "PASSED" {
		t.Fatalf("ResultsDB holds %+v, want one PASSED", rs)
	}
	if want := "http://hub/artifacts/" + r.ID + "/out/file.txt"; rs[0].RefURL != want {
		t.Errorf("result links %q, want %q (the artifact in the hub's tree)", rs[0].RefURL, want)
	}
	if data, err := os.ReadFile(filepath.Join(th.cfg.Runner.ArtifactsDir, r.ID, "out", "file.txt")); err != nil || string(data) != "data\n" {
		t.Errorf("artifact on the hub: %q %v", data, err)
	}
	d, err := th.execs.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != contract.StateFinished || d.Worker != "lab lab-a/lab-a" || d.Outcome != "PASSED" || len(d.Attempts) != 1 {
		t.Errorf("execution %+v", d.Execution)
	}
	var stdout []byte
	waitFor(t, "the shipped log", 10*time.Second, func() bool {
		stdout, _, _ = th.execs.ReadLog(context.Background(), r.ID, 1, "01-work.stdout", 0, 1<<20)
		return strings.Contains(string(stdout), "working on xchat-0.5-1.fc20")
	})
	out := filepath.Join(t.TempDir(), "run")
	if err := th.client(t, "").GetRun(context.Background(), r.ID, out, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "taskotron", "execution.json")); err != nil {
		t.Errorf("get-run: %v", err)
	}
	b, _ := th.store.Board(context.Background(), "lab-a")
	if b.Labels["cpu"] != "cortex-a9" || b.LastSeen == nil || b.Running != "" {
		t.Errorf("board %+v", b)
	}
	page := httpGet(t, th.url+"/boards")
	if !strings.Contains(page, "lab-a") || !strings.Contains(page, "cpu=cortex-a9") {
		t.Errorf("/boards does not show the board: %s", page)
	}
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// TestTokensAndLeasesAreChecked: wrong and revoked tokens are refused with
// one line; lab B cannot renew, upload to, finish or write the log of lab
// A's lease; a late run from an expired lease is refused.
func TestTokensAndLeasesAreChecked(t *testing.T) {
	th := startHub(t, 600*time.Millisecond, "postgres")
	ctx := context.Background()
	tokA, tokB := th.token(t, "lab-a"), th.token(t, "lab-b")
	a, b := th.client(t, tokA), th.client(t, tokB)

	if _, err := th.client(t, "tlab_wrong").WhoAmI(ctx); !IsStatus(err, http.StatusUnauthorized) || !strings.Contains(err.Error(), "not known") {
		t.Errorf("a wrong token: %v", err)
	}
	if _, err := th.client(t, "").Poll(ctx, PollRequest{}); !IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("no token: %v", err)
	}
	if _, err := th.client(t, tokA).Put(ctx, hello(nil)); !IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a lab token putting requests: %v, want 401", err)
	}
	r := th.put(t, hello(nil))[0]
	l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "1s"})
	if err != nil || l == nil || l.Request.ID != r.ID {
		t.Fatalf("poll: %+v %v", l, err)
	}
	if err := b.Heartbeat(ctx, l.ID, ""); !IsStatus(err, http.StatusForbidden) {
		t.Errorf("lab-b renewing lab-a's lease: %v, want 403", err)
	}
	if _, err := b.PutRun(ctx, l.ID, contract.Execution{ExecutionStatus: contract.ExecutionOK}); !IsStatus(err, http.StatusForbidden) {
		t.Errorf("lab-b finishing lab-a's lease: %v, want 403", err)
	}
	empty := t.TempDir()
	if err := b.PutArtifacts(ctx, l.ID, empty, 1<<20); !IsStatus(err, http.StatusForbidden) {
		t.Errorf("lab-b uploading to lab-a's lease: %v, want 403", err)
	}
	logsA, _ := execdb.NewClient(th.url, tokA, nil)
	logsB, _ := execdb.NewClient(th.url, tokB, nil)
	if _, err := logsA.AppendLog(ctx, r.ID, 1, "x.log", 0, []byte("a\n")); err != nil {
		t.Errorf("lab-a writing its lease's log: %v", err)
	}
	if _, err := logsB.AppendLog(ctx, r.ID, 1, "x.log", 2, []byte("b\n")); err == nil {
		t.Error("lab-b wrote lab-a's log")
	}
	if _, err := logsA.AppendLog(ctx, r.ID, 2, "x.log", 0, []byte("a\n")); err == nil {
		t.Error("lab-a wrote the log of an attempt it holds no lease on")
	}
	if _, err := b.Poll(ctx, PollRequest{Board: "a1", Wait: "0s"}); !IsStatus(err, http.StatusForbidden) {
		t.Errorf("lab-b polling as lab-a's board: %v, want 403", err)
	}
	if _, err := b.Poll(ctx, PollRequest{Board: "b1", Labels: Labels{"lab": "lab-a"}, Wait: "0s"}); !IsStatus(err, http.StatusForbidden) {
		t.Errorf("lab-b claiming lab=lab-a: %v, want 403", err)
	}

	// Lab A stops renewing: the lease expires and a late run is refused.
	waitFor(t, "the lease to expire", 10*time.Second, func() bool {
		got, _ := th.store.Get(ctx, r.ID)
		return got.State == StateQueued && got.Attempt == 1
	})
	if _, err := a.PutRun(ctx, l.ID, contract.Execution{ExecutionStatus: contract.ExecutionOK}); !IsStatus(err, http.StatusGone) {
		t.Errorf("a late run: %v, want 410", err)
	}
	if n := len(th.stored(t, r.ID)); n != 0 {
		t.Errorf("the late run stored %d results", n)
	}

	// Revoked: refused at once, with the reason.
	th.store.RevokeTokens(ctx, "lab-b")
	labCfg := config.Default()
	labCfg.DataDir = t.TempDir()
	ag, err := NewAgent(AgentOptions{Hub: th.url, Token: tokB, Config: labCfg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = ag.Run(rctx)
	if !errors.Is(err, ErrTokenRefused) || !strings.Contains(err.Error(), "revoked") || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), tokB) {
		t.Errorf("agent with a revoked token: %v, want one line saying revoked (and no token)", err)
	}
}

// TestLostLabsEndCrashedOnce: a request whose labs vanish three times ends
// CRASHED with the reason, reported once, and recorded so.
func TestLostLabsEndCrashedOnce(t *testing.T) {
	th := startHub(t, 300*time.Millisecond, "sqlite")
	ctx := context.Background()
	a := th.client(t, th.token(t, "lab-a"))
	r := th.put(t, hello(nil))[0]
	for attempt := 1; attempt <= 3; attempt++ {
		var l *Lease
		waitFor(t, fmt.Sprintf("attempt %d", attempt), 10*time.Second, func() bool {
			var err error
			l, err = a.Poll(ctx, PollRequest{Board: "a1", Wait: "200ms"})
			return err == nil && l != nil
		})
		if l.Attempt != attempt {
			t.Fatalf("lease attempt %d, want %d", l.Attempt, attempt)
		}
		// ...and the lab vanishes.
	}
	waitFor(t, "the request to crash", 10*time.Second, func() bool {
		got, _ := th.store.Get(ctx, r.ID)
		return got.State == StateCrashed
	})
	time.Sleep(500 * time.Millisecond) // more sweeps change nothing
	rs := th.stored(t, r.ID)
	if len(rs) != 1 || rs[0].Outcome != "CRASHED" || !strings.Contains(rs[0].Note, "gave up after 3 attempts") {
		t.Fatalf("ResultsDB holds %+v, want one CRASHED saying why", rs)
	}
	d, _ := th.execs.Get(ctx, r.ID)
	if d.State != contract.StateCrashed || len(d.Attempts) != 3 {
		t.Errorf("execution %s with %d attempts, want crashed with 3", d.State, len(d.Attempts))
	}
	if l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "0s"}); err != nil || l != nil {
		t.Errorf("a crashed request leased again: %+v %v", l, err)
	}
}

// TestBadRequestsAreOneLine: what a put gets wrong is named in one line.
func TestBadRequestsAreOneLine(t *testing.T) {
	th := startHub(t, time.Minute, "sqlite")
	c := th.client(t, "admin-secret")
	for _, n := range []NewRequest{
		{TaskName: "../x", Item: "i", ItemType: "koji_build"},
		{TaskName: "t", Item: "", ItemType: "koji_build"},
		{TaskName: "t", Item: "i", ItemType: "koji build"},
		{TaskName: "t", Item: "i", ItemType: "koji_build", Where: Labels{"cpu": "a b"}},
		{TaskName: "t", Item: "i", ItemType: "koji_build", Priority: 12},
		{TaskName: "t", Item: "i\x00", ItemType: "koji_build"},
	} {
		_, err := c.Put(context.Background(), n)
		if !IsStatus(err, http.StatusBadRequest) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want a one-line 400", n, err)
		}
	}
	resp, err := http.Post(th.url+APIPrefix+"/requests", "application/json", strings.NewReader("{nope"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no admin token: HTTP %d %v", resp.StatusCode, m)
	}
}

// TestCancel: a cancelled request is not run; a running one's lab loses
// its lease and its run is refused.
func TestCancel(t *testing.T) {
	th := startHub(t, time.Minute, "sqlite")
	ctx := context.Background()
	a := th.client(t, th.token(t, "lab-a"))
	admin := th.client(t, "admin-secret")
	running := th.put(t, hello(nil))[0]
	l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "1s"})
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	queued := th.put(t, hello(nil))[0]
	for _, id := range []string{queued.ID, running.ID} {
		if r, err := admin.Cancel(ctx, id); err != nil || r.State != StateCancelled {
			t.Fatalf("cancel %s: %+v %v", id, r, err)
		}
	}
	if _, err := admin.Cancel(ctx, queued.ID); !IsStatus(err, http.StatusConflict) {
		t.Errorf("cancelling twice: %v, want 409", err)
	}
	if err := a.Heartbeat(ctx, l.ID, ""); !IsStatus(err, http.StatusGone) {
		t.Errorf("heartbeat of a cancelled request: %v, want 410", err)
	}
	if _, err := a.PutRun(ctx, l.ID, contract.Execution{ExecutionStatus: contract.ExecutionOK}); !IsStatus(err, http.StatusGone) {
		t.Errorf("run of a cancelled request: %v, want 410", err)
	}
	if l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "0s"}); err != nil || l != nil {
		t.Errorf("a cancelled request was leased: %+v %v", l, err)
	}
	d, _ := th.execs.Get(ctx, running.ID)
	if d.State != contract.StateAborted || d.Reason != "cancelled" {
		t.Errorf("execution %s %q, want aborted: cancelled", d.State, d.Reason)
	}
}

// TestInfraFailureIsRetriedLater: a lab's run that failed on infrastructure
// goes back to the queue with its attempt counted, and is not taken again
// before its backoff; the last attempt's failure is reported as it is.
func TestInfraFailureIsRetriedLater(t *testing.T) {
	th := startHub(t, time.Minute, "sqlite")
	ctx := context.Background()
	a := th.client(t, th.token(t, "lab-a"))
	r := th.put(t, hello(nil))[0]
	l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "1s"})
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	broken := contract.Execution{ExecutionStatus: contract.ExecutionNotOK, Status: "koji unreachable", Infra: true, Outcome: contract.Aborted}
	ans, err := a.PutRun(ctx, l.ID, broken)
	if err != nil || ans.State != StateQueued {
		t.Fatalf("run: %+v %v, want queued again", ans, err)
	}
	got, _ := th.store.Get(ctx, r.ID)
	if got.State != StateQueued || got.Attempt != 1 || got.NotBefore == nil || time.Until(*got.NotBefore) < 3*time.Second {
		t.Errorf("request %+v, want queued after attempt 1, not before ~5s from now", got)
	}
	if l, err := a.Poll(ctx, PollRequest{Board: "a1", Wait: "0s"}); err != nil || l != nil {
		t.Errorf("taken again during its backoff: %+v %v", l, err)
	}
	if n := len(th.stored(t, r.ID)); n != 0 {
		t.Errorf("an attempt to be retried reported %d results", n)
	}
	// The last attempt: reported as the lab said.
	th.store.exec(ctx, `UPDATE lab_requests SET not_before = 0, attempt = 2 WHERE id = ?`, r.ID)
	l, err = a.Poll(ctx, PollRequest{Board: "a1", Wait: "1s"})
	if err != nil || l == nil || l.Attempt != 3 {
		t.Fatalf("attempt 3: %+v %v", l, err)
	}
	if ans, err := a.PutRun(ctx, l.ID, broken); err != nil || ans.State != StateAborted {
		t.Fatalf("last run: %+v %v, want aborted", ans, err)
	}
	rs := th.stored(t, r.ID)
	if len(rs) != 1 || rs[0].Outcome != "ABORTED" || !strings.Contains(rs[0].Note, "koji unreachable") {
		t.Errorf("ResultsDB holds %+v, want one ABORTED saying why", rs)
	}
}
