package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// fakeBodhi records the comments posted to it.
type fakeBodhi struct {
	mu       sync.Mutex
	comments []contract.BodhiComment
	auth     []string
	fail     int
}

func (b *fakeBodhi) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/csrf" {
		w.Write([]byte(`{"csrf_token": "tok-1"}`))
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/comments/" {
		http.Error(w, `{"status": "error", "errors": [{"name": "path"}]}`, 404)
		return
	}
	if r.Header.Get("Authorization") != "Bearer bodhi-token" {
		w.WriteHeader(403)
		w.Write([]byte(`{"status": "error", "errors": [{"location": "header", "name": "auth", "description": "not logged in"}]}`))
		return
	}
	if b.fail > 0 {
		b.fail--
		w.WriteHeader(503)
		return
	}
	var c contract.BodhiComment
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	if c.Extra["csrf_token"] != "tok-1" {
		w.WriteHeader(400)
		w.Write([]byte(`{"status": "error", "errors": [{"location": "body", "name": "csrf_token", "description": "CSRF tokens do not match"}]}`))
		return
	}
	b.comments = append(b.comments, c)
	b.auth = append(b.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"comment": {"id": 1}}`))
}

func (b *fakeBodhi) list() []contract.BodhiComment {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]contract.BodhiComment(nil), b.comments...)
}

func bodhiExecution(uuid string) contract.Execution {
	res := func(check string, o contract.Outcome, arch string) contract.Result {
		return contract.Result{Item: "FEDORA-2024-abc123", Type: "bodhi_update", CheckName: check, Outcome: o, Arch: contract.OneArch(arch)}
	}
	return contract.Execution{UUID: uuid, ExecutionStatus: "OK", TaskName: "depcheck", Item: "FEDORA-2024-abc123", ItemType: "bodhi_update", Results: []contract.Result{
		res("dist.depcheck", contract.Failed, "x86_64"),
		res("dist.depcheck", contract.Passed, "i386"),
		res("dist.upgradepath", contract.NeedsInspection, "noarch"),
		{Item: "foo-1-1.fc40", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: contract.Failed}, // no update: no comment
	}}
}

func TestBodhiComments(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := &fakeBodhi{fail: 1}
	bsrv := httptest.NewServer(fb)
	defer bsrv.Close()
	spool := t.TempDir()
	withBodhi := func(o *Options) { o.Bodhi = BodhiOptions{URL: bsrv.URL + "/", Token: "bodhi-token", Span: time.Hour} }
	r, _ := newTestReporter(t, srv.URL, spool, withBodhi)
	ctx := context.Background()
	d, err := r.Deliver(ctx, bodhiExecution("b-1"))
	if err != nil {
		t.Fatal(err)
	}
	got := fb.list()
	if d.Comments != 2 || len(got) != 2 {
		t.Fatalf("delivery %+v, comments %+v", d, got)
	}
	want := "Taskotron: dist.depcheck test FAILED on x86_64. Result log: https://taskotron.example/artifacts/all/b-1/"
	if got[0].Update != "FEDORA-2024-abc123" || got[0].Text != want || got[0].Karma != 0 {
		t.Errorf("comment = %+v\nwant text %q", got[0], want)
	}
	if !strings.HasPrefix(got[1].Text, "Taskotron: dist.upgradepath test NEEDS_INSPECTION on noarch.") {
		t.Errorf("second comment = %q", got[1].Text)
	}
	// The same comment again (another Reporter on the same spool, as after
	// a restart, reporting another execution that says the same) is not
	// made within the span...
	noLog := func(o *Options) { withBodhi(o); o.ArtifactsURL = "" }
	first, _ := newTestReporter(t, srv.URL, spool, noLog)
	if d, err := first.Deliver(ctx, bodhiExecution("b-1a")); err != nil || d.Comments != 2 {
		t.Fatalf("first report: %+v %v", d, err)
	}
	again, _ := newTestReporter(t, srv.URL, spool, noLog)
	d, err = again.Deliver(ctx, bodhiExecution("b-1b"))
	if err != nil || d.Comments != 0 || d.CommentsSpooled != 0 || len(fb.list()) != 4 {
		t.Fatalf("repeated comments: %+v %v, Bodhi has %d", d, err, len(fb.list()))
	}
	// ...but is after it.
	again.bodhi.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if d, err := again.Deliver(ctx, bodhiExecution("b-1c")); err != nil || d.Comments != 2 || len(fb.list()) != 6 {
		t.Fatalf("after the span: %+v %v, Bodhi has %d", d, err, len(fb.list()))
	}
}

func TestBodhiCommentOnIsConfigurable(t *testing.T) {
	fb := &fakeBodhi{}
	bsrv := httptest.NewServer(fb)
	defer bsrv.Close()
	r, _ := newTestReporter(t, "", t.TempDir(), func(o *Options) {
		o.Bodhi = BodhiOptions{URL: bsrv.URL, Token: "bodhi-token", CommentOn: []contract.Outcome{"passed"}}
	})
	cs := r.Comments(mustPosts(t, r, bodhiExecution("b-2")))
	if len(cs) != 1 || !strings.Contains(cs[0].Text, "test PASSED on i386") {
		t.Fatalf("comments = %+v", cs)
	}
	if _, err := New(Options{SpoolDir: t.TempDir(), Bodhi: BodhiOptions{URL: bsrv.URL, CommentOn: []contract.Outcome{"GREAT"}}}); err == nil {
		t.Errorf("unknown outcome accepted")
	}
}

func TestBodhiRefusalIsLoggedNotFatal(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := &fakeBodhi{}
	bsrv := httptest.NewServer(fb)
	defer bsrv.Close()
	r, logs := newTestReporter(t, srv.URL, t.TempDir(), func(o *Options) { o.Bodhi = BodhiOptions{URL: bsrv.URL, Token: "wrong"} })
	d, err := r.Deliver(context.Background(), bodhiExecution("b-3"))
	if err != nil || d.Stored != 4 || d.Comments != 0 || d.CommentsRejected != 2 || d.CommentsSpooled != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	if !strings.Contains(logs.String(), "status=403") || !strings.Contains(logs.String(), "header.auth: not logged in") || !strings.Contains(logs.String(), "update=FEDORA-2024-abc123") {
		t.Errorf("log lacks Bodhi's answer:\n%s", logs)
	}
}

func mustPosts(t *testing.T, r *Reporter, e contract.Execution) []contract.ResultsDBPost {
	t.Helper()
	p, err := r.Posts(e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBodhiCommentActionsAreMade: the comments a formula's bodhi_comment
// actions made reach Bodhi through the reporter, also after the execution
// went through JSON (the job queue, `taskotron report EXECUTION.json`).
func TestBodhiCommentActionsAreMade(t *testing.T) {
	rdb := &fakeResultsDB{}
	srv, _ := startFake(t, rdb, 0)
	fb := &fakeBodhi{}
	bsrv := httptest.NewServer(fb)
	defer bsrv.Close()
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), func(o *Options) {
		o.Bodhi = BodhiOptions{URL: bsrv.URL, Token: "bodhi-token"}
	})
	e := contract.Execution{UUID: "b-4", ExecutionStatus: "OK", TaskName: "rpmlint", Item: "foo-1-1.fc40", ItemType: "koji_build",
		Results:       []contract.Result{{Item: "foo-1-1.fc40", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: contract.Failed}},
		BodhiComments: []contract.BodhiComment{{Update: "FEDORA-2024-abc123", Text: "Taskotron: dist.rpmlint test FAILED on x86_64."}}}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back contract.Execution
	if err := json.Unmarshal(bytes.ReplaceAll(raw, []byte("abc123"), []byte("def456")), &back); err != nil {
		t.Fatal(err)
	}
	back.UUID = "b-5"
	for _, ex := range []contract.Execution{e, back} {
		if d, err := r.Deliver(context.Background(), ex); err != nil || d.Comments != 1 {
			t.Fatalf("%s: %+v %v", ex.UUID, d, err)
		}
	}
	got := fb.list()
	if len(got) != 2 || got[0].Update != "FEDORA-2024-abc123" || got[1].Update != "FEDORA-2024-def456" || got[0].Text != "Taskotron: dist.rpmlint test FAILED on x86_64." {
		t.Fatalf("comments = %+v", got)
	}
}

// TestBodhiCommentActionsReplaceTheAutomaticOnes: an update a formula
// commented on gets that comment only, not also the reporter's own
// comment about the same failure; other updates still get theirs.
func TestBodhiCommentActionsReplaceTheAutomaticOnes(t *testing.T) {
	fb := &fakeBodhi{}
	bsrv := httptest.NewServer(fb)
	defer bsrv.Close()
	r, _ := newTestReporter(t, "", t.TempDir(), func(o *Options) {
		o.Bodhi = BodhiOptions{URL: bsrv.URL, Token: "bodhi-token"}
		o.ArtifactsURL = ""
	})
	e := bodhiExecution("b-6")
	e.BodhiComments = []contract.BodhiComment{{Update: "FEDORA-2024-abc123", Text: "Taskotron: depcheck failed, see the log."}}
	other := contract.Result{Item: "FEDORA-2024-fff000", Type: "bodhi_update", CheckName: "dist.depcheck", Outcome: contract.Failed, Arch: contract.OneArch("x86_64")}
	e.Results = append(e.Results, other)
	cs := r.ExecutionComments(e, mustPosts(t, r, e))
	if len(cs) != 2 || cs[0].Text != "Taskotron: depcheck failed, see the log." || cs[1].Update != "FEDORA-2024-fff000" {
		t.Fatalf("comments = %+v", cs)
	}
	// Without an artifacts URL the comment has no dangling "Result log:".
	if cs[1].Text != "Taskotron: dist.depcheck test FAILED on x86_64." {
		t.Errorf("text = %q", cs[1].Text)
	}
}
