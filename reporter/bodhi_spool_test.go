package reporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	fakebodhi "github.com/taskotron-go/taskotron/fakes/bodhi"
)

// The updates of fixtures/bodhi/updates.json.
const (
	updateA = "FEDORA-2024-0a1b2c3d4e" // pyboth, pythree
	updateB = "FEDORA-2024-5f6e7d8c9b" // lintbad
)

// startBodhiDouble serves the project's Bodhi double on a real socket; it
// wants the bearer token "bodhi-secret" for comments.
func startBodhiDouble(t *testing.T) *fakebodhi.Server {
	t.Helper()
	fb, err := fakebodhi.Load("../fixtures/bodhi/updates.json")
	if err != nil {
		t.Fatal(err)
	}
	fb.Token = "bodhi-secret"
	if err := fb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	return fb
}

// restartBodhi serves the double again on its old address after Close
// (its comments survive: they live in the Server).
func restartBodhi(t *testing.T, fb *fakebodhi.Server, addr string) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = fb.Start(addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("Bodhi double on %s again: %v", addr, err)
}

func withBodhiAt(url string) func(*Options) {
	return func(o *Options) { o.Bodhi = BodhiOptions{URL: url, Token: "bodhi-secret"} }
}

// updateExecution has one result per outcome on the update; FAILED and
// NEEDS_INSPECTION get comments.
func updateExecution(uuid, update string, outcomes ...contract.Outcome) contract.Execution {
	e := contract.Execution{UUID: uuid, ExecutionStatus: contract.ExecutionOK, TaskName: "depcheck", Item: update, ItemType: "bodhi_update"}
	for i, o := range outcomes {
		e.Results = append(e.Results, contract.Result{Item: update, Type: "bodhi_update", CheckName: "dist.depcheck", Outcome: o,
			Arch: contract.OneArch([]string{"x86_64", "i686", "aarch64"}[i%3])})
	}
	return e
}

func commentTexts(fb *fakebodhi.Server) []string {
	var out []string
	for _, c := range fb.Comments() {
		out = append(out, fmt.Sprint(c["update_alias"], ": ", c["text"]))
	}
	return out
}

func pending(t *testing.T, r *Reporter) Pending {
	t.Helper()
	p, err := r.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBodhiDownCommentIsSpooledAndDeliveredOnce: Bodhi is down (nothing
// listens); the results are stored, the comment waits in the spool; the
// reporter restarts; Bodhi comes back; the flush delivers exactly one
// comment, however often it runs.
func TestBodhiDownCommentIsSpooledAndDeliveredOnce(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	url, addr := fb.URL(), strings.TrimPrefix(fb.URL(), "http://")
	fb.Close()
	spool := t.TempDir()
	ctx := context.Background()
	r, logs := newTestReporter(t, srv.URL, spool, func(o *Options) {
		withBodhiAt(url)(o)
		o.RetryMax, o.RetryWaitMin = 4, 200*time.Millisecond
	})
	e := updateExecution("c-down-1", updateA, contract.Failed, contract.Passed)
	start := time.Now()
	d, err := r.Deliver(ctx, e)
	if err != nil || d.Stored != 2 || d.Comments != 0 || d.CommentsSpooled != 1 {
		t.Fatalf("report while Bodhi is down: %+v %v", d, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a refused connection waited through retries: %s", took)
	}
	if p := pending(t, r); p.Comments != 1 || p.Posts != 0 {
		t.Fatalf("pending %+v, want one comment", p)
	}
	if !strings.Contains(logs.String(), "Bodhi unavailable; comments wait in the spool") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the outage is not logged with its cause:\n%s", logs)
	}
	if err := r.Flush(ctx); err == nil || !isBodhiUnavailable(err) {
		t.Fatalf("flush while Bodhi is down: %v", err)
	}

	// The worker restarts; Bodhi comes back.
	restartBodhi(t, fb, addr)
	again, _ := newTestReporter(t, srv.URL, spool, withBodhiAt(url))
	if err := again.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := updateA + ": Taskotron: dist.depcheck test FAILED on x86_64. Result log: https://taskotron.example/artifacts/all/c-down-1/"
	if got := commentTexts(fb); len(got) != 1 || got[0] != want {
		t.Fatalf("Bodhi has %q, want exactly %q", got, want)
	}
	if p := pending(t, again); p.Comments != 0 {
		t.Errorf("pending after delivery: %+v", p)
	}
	// Flushing again, or the job coming back, makes no second comment.
	if err := again.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := again.Deliver(ctx, e); err != nil || !d.Already {
		t.Fatalf("second report: %+v %v", d, err)
	}
	if n := len(fb.Comments()); n != 1 {
		t.Fatalf("Bodhi has %d comments, want 1", n)
	}
}

// bodhiGate stands in front of the Bodhi double (same protocol, real
// socket) and answers comment posts as an unwell Bodhi or proxy would.
type bodhiGate struct {
	next http.Handler
	mu   sync.Mutex
	// status, when set, answers every POST /comments/ without passing it on.
	status int
	// storeThen passes the post on, then answers this status instead.
	storeThen int
	// stall passes the post on, then waits this long before answering.
	stall time.Duration
	posts int
}

func (g *bodhiGate) set(f func(g *bodhiGate)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *bodhiGate) postCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.posts
}

func (g *bodhiGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	g.posts++
	status, storeThen, stall := g.status, g.storeThen, g.stall
	g.mu.Unlock()
	if status != 0 {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status": "error", "errors": [{"location": "body", "name": "", "description": "HTTP %d from the gate"}]}`, status)
		return
	}
	if storeThen == 0 && stall == 0 {
		g.next.ServeHTTP(w, r)
		return
	}
	g.next.ServeHTTP(httptest.NewRecorder(), r) // stored; the answer is lost
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
			return
		}
	}
	if storeThen != 0 {
		w.WriteHeader(storeThen)
	}
}

// TestBusyOrFailingBodhiCommentsWait: 5xx, 429 and 408 leave the comment in
// the spool, and the background loop delivers it once Bodhi answers.
func TestBusyOrFailingBodhiCommentsWait(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	for i, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusTooManyRequests, http.StatusRequestTimeout} {
		fb := startBodhiDouble(t)
		gate := &bodhiGate{next: fb, status: status}
		gs := httptest.NewServer(gate)
		r, _ := newTestReporter(t, srv.URL, t.TempDir(), withBodhiAt(gs.URL))
		ctx, cancel := context.WithCancel(context.Background())
		uuid := fmt.Sprintf("c-busy-%d", i)
		start := time.Now()
		d, err := r.Deliver(ctx, updateExecution(uuid, updateB, contract.NeedsInspection))
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("HTTP %d with Retry-After: 3600 held the report for %s", status, took)
		}
		if err != nil || d.Comments != 0 || d.CommentsSpooled != 1 || len(fb.Comments()) != 0 {
			t.Fatalf("HTTP %d: %+v %v, Bodhi has %v", status, d, err, commentTexts(fb))
		}
		gate.set(func(g *bodhiGate) { g.status = 0 })
		done := make(chan error)
		go func() { done <- r.Run(ctx, 10*time.Millisecond) }()
		deadline := time.Now().Add(5 * time.Second)
		for pending(t, r).Comments > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // a few more turns of the loop
		cancel()
		<-done
		if got := commentTexts(fb); len(got) != 1 || !strings.Contains(got[0], uuid) {
			t.Errorf("HTTP %d, then back: Bodhi has %q, want one comment about %s", status, got, uuid)
		}
		gs.Close()
	}
}

// TestLostBodhiAnswerMakesNoSecondComment: Bodhi stores the comment but the
// answer is an error, or never comes in time. The comment stays spooled;
// the next flush finds it in Bodhi's comment list and does not post again.
func TestLostBodhiAnswerMakesNoSecondComment(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	for i, lose := range []func(g *bodhiGate){
		func(g *bodhiGate) { g.storeThen = http.StatusGatewayTimeout },
		func(g *bodhiGate) { g.storeThen = http.StatusInternalServerError },
		func(g *bodhiGate) { g.stall = 2 * time.Second },
	} {
		fb := startBodhiDouble(t)
		gate := &bodhiGate{next: fb}
		gate.set(lose)
		gs := httptest.NewServer(gate)
		spool := t.TempDir()
		r, logs := newTestReporter(t, srv.URL, spool, func(o *Options) {
			withBodhiAt(gs.URL)(o)
			o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
		})
		ctx := context.Background()
		d, err := r.Deliver(ctx, updateExecution(fmt.Sprintf("c-lost-%d", i), updateA, contract.Failed))
		if err != nil || d.Comments != 0 || d.CommentsSpooled != 1 || len(fb.Comments()) != 1 {
			t.Fatalf("case %d: %+v %v, Bodhi has %q", i, d, err, commentTexts(fb))
		}
		gate.set(func(g *bodhiGate) { g.storeThen, g.stall = 0, 0 })
		for range 2 {
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(fb.Comments()); n != 1 || gate.postCount() != 1 || pending(t, r).Comments != 0 {
			t.Errorf("case %d: Bodhi has %d comments after %d posts, %d pending; want 1, 1, 0", i, n, gate.postCount(), pending(t, r).Comments)
		}
		if !strings.Contains(logs.String(), "Bodhi already has the comment from an earlier attempt") {
			t.Errorf("case %d: not logged:\n%s", i, logs)
		}
		gs.Close()
	}
}

// TestCrashBetweenBodhiAnswerAndSpoolRemoval: the process dies after Bodhi
// took the comment and before anything was recorded but the attempt. The
// restarted reporter, flushing twice, makes no second comment.
func TestCrashBetweenBodhiAnswerAndSpoolRemoval(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	spool := t.TempDir()
	ctx := context.Background()
	r, _ := newTestReporter(t, srv.URL, spool, withBodhiAt(fb.URL()))
	r.bodhi.afterPost = func() error { return errors.New("killed") }
	d, err := r.Deliver(ctx, updateExecution("c-crash", updateA, contract.Failed))
	if err != nil || d.CommentsSpooled != 1 || len(fb.Comments()) != 1 {
		t.Fatalf("%+v %v, Bodhi has %q", d, err, commentTexts(fb))
	}
	names, _ := r.spool.listIn(commentsQueue)
	if len(names) != 1 {
		t.Fatalf("spool holds %v", names)
	}
	var e commentEntry
	if err := r.spool.loadIn(commentsQueue, names[0], &e); err != nil || e.Attempted == nil {
		t.Fatalf("the attempt is not on disk before the post: %+v %v", e, err)
	}
	if _, err := os.Stat(filepath.Join(spool, "bodhi-comments.json")); err == nil {
		t.Fatal("the crash came too late: the history was written")
	}
	for range 2 {
		restarted, _ := newTestReporter(t, srv.URL, spool, withBodhiAt(fb.URL()))
		if err := restarted.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fb.Comments()); n != 1 {
		t.Fatalf("Bodhi has %d comments, want 1: %q", n, commentTexts(fb))
	}
}

// TestBodhiRejectionIsSetAside: a comment Bodhi refuses for good (unknown
// update, bad credentials) is kept with Bodhi's answer, logged in one line
// naming the update and why, and not sent again.
func TestBodhiRejectionIsSetAside(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	gate := &bodhiGate{next: fb}
	gs := httptest.NewServer(gate)
	defer gs.Close()
	spool := t.TempDir()
	r, logs := newTestReporter(t, srv.URL, spool, withBodhiAt(gs.URL))
	ctx := context.Background()
	d, err := r.Deliver(ctx, updateExecution("c-unknown", "FEDORA-2099-0000000000", contract.Failed))
	if err != nil || d.Stored != 1 || d.Comments != 0 || d.CommentsRejected != 1 || d.CommentsSpooled != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	names, _ := os.ReadDir(filepath.Join(spool, commentsRejected))
	if len(names) != 1 {
		t.Fatalf("comments-rejected holds %v", names)
	}
	var rej rejectedComment
	raw, _ := os.ReadFile(filepath.Join(spool, commentsRejected, names[0].Name()))
	if err := json.Unmarshal(raw, &rej); err != nil || rej.Status != 400 || rej.Comment.Update != "FEDORA-2099-0000000000" ||
		!strings.Contains(rej.Message, "body.update: Invalid update specified: FEDORA-2099-0000000000") || rej.UUID != "c-unknown" {
		t.Fatalf("rejected entry = %+v %v", rej, err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "Bodhi rejected a comment") {
			if line != "" {
				t.Errorf("logged twice:\n%s", logs)
			}
			line = l
		}
	}
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "update=FEDORA-2099-0000000000") || !strings.Contains(line, "Invalid update specified") {
		t.Errorf("log line = %q", line)
	}
	posts := gate.postCount()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if gate.postCount() != posts {
		t.Errorf("a rejected comment was sent again")
	}
	if p := pending(t, r); p.Comments != 0 || p.RejectedComments != 1 {
		t.Errorf("pending = %+v", p)
	}

	// Bad credentials found when the spool is sent: set aside too.
	gate.set(func(g *bodhiGate) { g.status = http.StatusServiceUnavailable })
	if d, err := r.Deliver(ctx, updateExecution("c-creds", updateB, contract.Failed)); err != nil || d.CommentsSpooled != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	gate.set(func(g *bodhiGate) { g.status = 0 })
	revoked, rlogs := newTestReporter(t, srv.URL, spool, func(o *Options) { o.Bodhi = BodhiOptions{URL: gs.URL, Token: "revoked"} })
	if err := revoked.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p := pending(t, r); p.Comments != 0 || p.RejectedComments != 2 || len(fb.Comments()) != 0 {
		t.Errorf("pending = %+v, Bodhi has %q", p, commentTexts(fb))
	}
	if !strings.Contains(rlogs.String(), "update="+updateB+" status=403") || !strings.Contains(rlogs.String(), "You must be logged in to comment") {
		t.Errorf("the 403 is not logged with the update:\n%s", rlogs)
	}
}

// TestResultsAndCommentsKeepTheirOwnOrder: with both services down, each
// queue fills in order; Bodhi coming back delivers every comment in order
// while the results still wait; then ResultsDB takes the results in order.
func TestResultsAndCommentsKeepTheirOwnOrder(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	rdbAddr := srv.Listener.Addr().String()
	srv.Close()
	fb := startBodhiDouble(t)
	url, addr := fb.URL(), strings.TrimPrefix(fb.URL(), "http://")
	fb.Close()
	r, _ := newTestReporter(t, "http://"+rdbAddr, t.TempDir(), withBodhiAt(url))
	ctx := context.Background()
	var want, wantGroups []string
	for i := 0; i < 3; i++ {
		uuid := fmt.Sprintf("c-order-%d", i)
		for _, u := range []string{updateB, updateA} {
			e := updateExecution(uuid+"-"+u[len(u)-4:], u, contract.Failed, contract.Passed)
			d, err := r.Deliver(ctx, e)
			if err != nil || d.Spooled != 2 || d.CommentsSpooled != 1 {
				t.Fatalf("%s: %+v %v", e.UUID, d, err)
			}
			wantGroups = append(wantGroups, e.UUID, e.UUID)
			want = append(want, fmt.Sprintf("%s: Taskotron: dist.depcheck test FAILED on x86_64. Result log: https://taskotron.example/artifacts/all/%s/", u, e.UUID))
		}
	}
	if p := pending(t, r); p.Posts != 12 || p.Comments != 6 {
		t.Fatalf("pending = %+v", p)
	}
	restartBodhi(t, fb, addr)
	err := r.Flush(ctx)
	if err == nil || !isUnavailable(err) || isBodhiUnavailable(err) {
		t.Fatalf("flush with ResultsDB still down: %v", err)
	}
	if got := commentTexts(fb); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("comments, in Bodhi's order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := pending(t, r); p.Posts != 12 || p.Comments != 0 {
		t.Fatalf("pending = %+v", p)
	}
	serveAt(t, rdbAddr, rdb)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rdb.mu.Lock()
	var groups []string
	for _, res := range rdb.results {
		groups = append(groups, res["groups"].([]any)[0].(string))
	}
	rdb.mu.Unlock()
	if strings.Join(groups, " ") != strings.Join(wantGroups, " ") {
		t.Fatalf("results stored for\n%v\nwant\n%v", groups, wantGroups)
	}
	if n := len(fb.Comments()); n != 6 {
		t.Errorf("Bodhi has %d comments, want 6", n)
	}
}

// TestBuildCommentFindsItsUpdateWhenBodhiIsBack: a bodhi_comment action
// that could not look the build's updates up (Bodhi was down) left a
// comment naming the build; the reporter spools it and, once Bodhi
// answers, comments on each update holding the build.
func TestBuildCommentFindsItsUpdateWhenBodhiIsBack(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	url, addr := fb.URL(), strings.TrimPrefix(fb.URL(), "http://")
	fb.Close()
	spool := t.TempDir()
	r, logs := newTestReporter(t, srv.URL, spool, withBodhiAt(url))
	e := contract.Execution{UUID: "c-build", ExecutionStatus: "OK", TaskName: "rpmlint", Item: "lintbad-0.1-1.fc40", ItemType: "koji_build",
		Results: []contract.Result{{Item: "lintbad-0.1-1.fc40", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: contract.Failed}},
		BodhiComments: []contract.BodhiComment{
			{Text: "Taskotron: dist.rpmlint test FAILED on noarch.", Extra: contract.Extra{"build": "lintbad-0.1-1.fc40"}},
			{Text: "Taskotron: dist.rpmlint test FAILED on noarch.", Extra: contract.Extra{"build": "orphan-1-1.fc40"}},
		}}
	ctx := context.Background()
	if d, err := r.Deliver(ctx, e); err != nil || d.CommentsSpooled != 2 {
		t.Fatalf("%+v %v", d, err)
	}
	restartBodhi(t, fb, addr)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := commentTexts(fb); len(got) != 1 || got[0] != updateB+": Taskotron: dist.rpmlint test FAILED on noarch." {
		t.Fatalf("Bodhi has %q", got)
	}
	if p := pending(t, r); p.Comments != 0 || p.RejectedComments != 0 {
		t.Errorf("pending = %+v", p)
	}
	if !strings.Contains(logs.String(), "no update holds the build") || !strings.Contains(logs.String(), "orphan-1-1.fc40") {
		t.Errorf("the dropped comment is not logged:\n%s", logs)
	}
}

// TestSpooledCommentsKeepTheSpanRule: a comment made within the span is not
// spooled again, nor is one already waiting; a late delivery still makes
// each comment once.
func TestSpooledCommentsKeepTheSpanRule(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	url, addr := fb.URL(), strings.TrimPrefix(fb.URL(), "http://")
	spool := t.TempDir()
	// Without an artifacts URL, reruns say exactly the same.
	r, _ := newTestReporter(t, srv.URL, spool, func(o *Options) { withBodhiAt(url)(o); o.ArtifactsURL = "" })
	ctx := context.Background()
	if d, err := r.Deliver(ctx, updateExecution("c-span-1", updateA, contract.Failed)); err != nil || d.Comments != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	fb.Close()
	for i, tc := range []struct {
		outcome contract.Outcome
		spooled int
	}{
		{contract.Failed, 0},          // made an hour ago
		{contract.NeedsInspection, 1}, // new
		{contract.NeedsInspection, 0}, // already waiting
	} {
		d, err := r.Deliver(ctx, updateExecution(fmt.Sprintf("c-span-%d", i+2), updateA, tc.outcome))
		if err != nil || d.CommentsSpooled != tc.spooled {
			t.Fatalf("report %d: %+v %v, want %d spooled", i+2, d, err, tc.spooled)
		}
	}
	restartBodhi(t, fb, addr)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{updateA + ": Taskotron: dist.depcheck test FAILED on x86_64.", updateA + ": Taskotron: dist.depcheck test NEEDS_INSPECTION on x86_64."}
	if got := commentTexts(fb); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Bodhi has %q, want %q", got, want)
	}
}

// TestTwoProcessesShareTheCommentSpool: a worker and `report --flush` on
// one spool folder make each spooled comment once.
func TestTwoProcessesShareTheCommentSpool(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := startBodhiDouble(t)
	url, addr := fb.URL(), strings.TrimPrefix(fb.URL(), "http://")
	fb.Close()
	spool := t.TempDir()
	a, _ := newTestReporter(t, srv.URL, spool, withBodhiAt(url))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if d, err := a.Deliver(ctx, updateExecution(fmt.Sprintf("c-shared-%d", i), updateB, contract.Failed)); err != nil || d.CommentsSpooled != 1 {
			t.Fatalf("%+v %v", d, err)
		}
	}
	restartBodhi(t, fb, addr)
	b, _ := newTestReporter(t, srv.URL, spool, withBodhiAt(url))
	var wg sync.WaitGroup
	for _, r := range []*Reporter{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Flush(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(fb.Comments()); n != 5 {
		t.Fatalf("Bodhi has %d comments, want 5: %q", n, commentTexts(fb))
	}
}
