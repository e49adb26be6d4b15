package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestReporter(t *testing.T, url, spool string, mod func(*Options)) (*Reporter, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	o := Options{
		ResultsDBURL: url, SpoolDir: spool,
		ArtifactsURL: "https://taskotron.example/artifacts/all",
		ExecDBURL:    "https://taskotron.example/execdb",
		TestcaseURL:  "https://fedoraproject.org/wiki/Taskotron/Tasks",
		Log:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMax:     1, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
	}
	if mod != nil {
		mod(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

// execution makes an execution with n results; results 0 and 1 are
// identical on purpose (a task may report the same thing twice).
func execution(uuid string, n int) contract.Execution {
	e := contract.Execution{UUID: uuid, ExecutionStatus: contract.ExecutionOK, Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64"}
	for i := 0; i < n; i++ {
		note := fmt.Sprintf("%d warnings", i)
		if i == 1 {
			note = "0 warnings"
		}
		e.Results = append(e.Results, contract.Result{
			Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint",
			Outcome: contract.Passed, Note: note, Arch: contract.OneArch("x86_64"),
			Extra: contract.Extra{"scenario": "x86_64", "count": 3},
		})
	}
	return e
}

func TestPostsShape(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "art", "output"), 0o755)
	os.WriteFile(filepath.Join(dir, "art", "output", "rpmlint.log"), []byte("log"), 0o644)
	r, _ := newTestReporter(t, "", "", nil)
	e := contract.Execution{UUID: "u-1", ExecutionStatus: "OK", Artifacts: filepath.Join(dir, "art"), TaskName: "rpmlint", Item: "xchat-0.5-1.fc20", Arch: "x86_64",
		Results: []contract.Result{
			{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: "FAILED", Note: "5 errors", Arch: contract.Arches{Names: []string{"x86_64", "noarch"}, List: true}, Artifact: "output/rpmlint.log", Extra: contract.Extra{"scenario": "a", "n": 5, "list": []any{"x", 2}}},
			{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: "PASSED", Artifact: "../../etc/passwd"},
			{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: "PASSED", Artifact: "missing.log"},
		}}
	posts, err := r.Posts(e)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(posts[0])
	want := `{"outcome":"FAILED","testcase":{"name":"dist.rpmlint","ref_url":"https://fedoraproject.org/wiki/Taskotron/Tasks/dist.rpmlint"},` +
		`"groups":[{"uuid":"u-1","ref_url":"https://taskotron.example/execdb/jobs/u-1","description":"rpmlint on xchat-0.5-1.fc20 (x86_64)"}],` +
		`"note":"5 errors","ref_url":"https://taskotron.example/artifacts/all/u-1/output/rpmlint.log",` +
		`"data":{"arch":["x86_64","noarch"],"item":"xchat-0.5-1.fc20","list":["x","2"],"n":"5","scenario":"a","type":"koji_build"}}`
	if string(got) != want {
		t.Errorf("post:\n got %s\nwant %s", got, want)
	}
	for _, p := range posts[1:] {
		if p.RefURL != "https://taskotron.example/artifacts/all/u-1/" {
			t.Errorf("artifact outside or missing must link the root, got %s", p.RefURL)
		}
	}
}

func TestPostsTerminalResultForCrashedRun(t *testing.T) {
	r, _ := newTestReporter(t, "", "", nil)
	e := contract.Execution{UUID: "u-2", ExecutionStatus: contract.ExecutionNotOK, Status: "koji download failed: connection refused", ExitCode: 1,
		Item: "foo-1-1.fc40", ItemType: "koji_build", TaskName: "rpmlint", Arch: "noarch", Namespace: "dist"}
	posts, err := r.Posts(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(posts) != 1 || posts[0].Outcome != contract.Crashed || posts[0].Testcase.Name != "dist.rpmlint" || posts[0].Note != e.Status || posts[0].Data["item"] != "foo-1-1.fc40" {
		t.Fatalf("posts = %+v", posts)
	}
	// The verdict is what the runner knew, not a word in the status.
	e.Status = "action timed out after 20m0s"
	if posts, _ := r.Posts(e); posts[0].Outcome != contract.Crashed {
		t.Errorf("a status that says timeout, without the runner's outcome, gave %s, want CRASHED", posts[0].Outcome)
	}
	e.Outcome = contract.Aborted
	if posts, _ := r.Posts(e); posts[0].Outcome != contract.Aborted {
		t.Errorf("the runner's ABORTED gave %s", posts[0].Outcome)
	}
	e.Item = ""
	if _, err := r.Posts(e); err == nil || !strings.Contains(err.Error(), "NOT_OK without results") {
		t.Errorf("err = %v", err)
	}
	if _, err := r.Posts(contract.Execution{}); err == nil {
		t.Errorf("no uuid accepted")
	}
}

func TestReportStoresOnceEvenWhenReportedTwice(t *testing.T) {
	f := &fakeResultsDB{token: "s3cret"}
	srv, _ := startFake(t, f, 0)
	spool := t.TempDir()
	r, _ := newTestReporter(t, srv.URL, spool, func(o *Options) { o.Token = "s3cret" })
	ctx := context.Background()
	e := execution("11111111-aaaa", 3)
	if err := r.Report(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := r.Report(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n := f.count(e.UUID); n != 3 {
		t.Fatalf("stored %d results, want 3", n)
	}
	// A second worker (no local marker) reporting the same execution finds
	// the results in ResultsDB and stores nothing.
	other, _ := newTestReporter(t, srv.URL+"/api/v2.0/", t.TempDir(), func(o *Options) { o.Token = "s3cret" })
	d, err := other.Deliver(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if d.Present != 3 || d.Stored != 0 || f.count(e.UUID) != 3 {
		t.Fatalf("second reporter: %+v, stored %d", d, f.count(e.UUID))
	}
	// An interrupted report: only the first result made it.
	e2 := execution("22222222-bbbb", 3)
	half, _ := newTestReporter(t, srv.URL, t.TempDir(), func(o *Options) { o.Token = "s3cret" })
	first := e2
	first.Results = e2.Results[:1]
	if err := half.Report(ctx, first); err != nil {
		t.Fatal(err)
	}
	d, err = other.Deliver(ctx, e2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Present != 1 || d.Stored != 2 || f.count(e2.UUID) != 3 {
		t.Fatalf("after an interrupted report: %+v, stored %d", d, f.count(e2.UUID))
	}
}

func TestRejectedResultIsKeptWithServerMessage(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"message": "testcase name not allowed"}`, "testcase name not allowed"},
		{`{"detail": [{"loc": ["body", "outcome"], "msg": "bad"}]}`, `[{"loc":["body","outcome"],"msg":"bad"}]`},
		{"<html><body>Bad Request</body></html>", "<html><body>Bad Request</body></html>"},
	} {
		f := &fakeResultsDB{rejectBody: tc.body}
		srv, _ := startFake(t, f, 0)
		spool := t.TempDir()
		r, logs := newTestReporter(t, srv.URL, spool, nil)
		e := execution("33333333-cccc", 2)
		e.Results[0].CheckName = "reject.me"
		d, err := r.Deliver(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if d.Rejected != 1 || d.Stored != 1 || f.total() != 1 {
			t.Fatalf("delivery %+v, stored %d", d, f.total())
		}
		raw, err := os.ReadFile(filepath.Join(spool, "rejected", "33333333-cccc-0.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rej rejectedEntry
		json.Unmarshal(raw, &rej)
		if rej.Status != 400 || rej.Message != tc.want || rej.Post.Testcase.Name != "reject.me" {
			t.Errorf("rejected entry = %+v", rej)
		}
		if !strings.Contains(logs.String(), "ResultsDB rejected a result") || !strings.Contains(logs.String(), "status=400") {
			t.Errorf("log lacks the rejection:\n%s", logs)
		}
		if n, _ := r.Spooled(); n != 0 {
			t.Errorf("a rejected post must not wait in the queue")
		}
	}
}

// A 408 (the server gave up waiting for the request) means ResultsDB did
// not take the post: it waits in the spool, it is not set aside as refused.
func TestRequestTimeoutIsNotARejection(t *testing.T) {
	f := &fakeResultsDB{failPosts: 1000, failStatus: http.StatusRequestTimeout}
	srv, _ := startFake(t, f, 0)
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	e := execution("44444444-dddd", 2)
	d, err := r.Deliver(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if d.Rejected != 0 || d.Spooled != 2 || f.total() != 0 {
		t.Fatalf("delivery %+v with ResultsDB answering 408; want both posts spooled", d)
	}
	f.mu.Lock()
	f.failPosts = 0
	f.mu.Unlock()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.count(e.UUID) != 2 {
		t.Fatalf("%d results stored after the flush, want 2", f.count(e.UUID))
	}
}

// TestOutage: ResultsDB resets the first connections, then comes back.
// Every result arrives exactly once, in order, even though each execution
// is reported twice.
func TestOutage(t *testing.T) {
	f := &fakeResultsDB{}
	srv, rl := startFake(t, f, 25)
	spool := t.TempDir()
	r, logs := newTestReporter(t, srv.URL, spool, nil)
	ctx := context.Background()
	var execs []contract.Execution
	total := 0
	for i := 0; i < 20; i++ {
		e := execution(fmt.Sprintf("0000000%d-outage-%02d", i%10, i), 1+i%4)
		execs = append(execs, e)
		total += len(e.Results)
		if err := r.Report(ctx, e); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if rl.refusedCount() == 0 {
		t.Fatal("the outage did not happen")
	}
	for _, e := range execs {
		if err := r.Report(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// As the background loop does: flush until the spool is empty.
	for i := 0; ; i++ {
		err := r.Flush(ctx)
		if err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("flush after the outage: %v", err)
		}
	}
	if n, _ := r.Spooled(); n != 0 {
		t.Fatalf("%d posts still spooled", n)
	}
	if f.total() != total {
		t.Fatalf("stored %d results, want %d", f.total(), total)
	}
	for _, e := range execs {
		if n := f.count(e.UUID); n != len(e.Results) {
			t.Errorf("%s: %d results stored, want %d", e.UUID, n, len(e.Results))
		}
	}
	// In order: results were stored in the order the executions came.
	f.mu.Lock()
	last := -1
	for _, res := range f.results {
		g := res["groups"].([]any)[0].(string)
		var idx int
		fmt.Sscanf(g[len(g)-2:], "%d", &idx)
		if idx < last {
			t.Errorf("result of execution %d stored after one of execution %d", idx, last)
		}
		last = idx
	}
	f.mu.Unlock()
	if strings.Count(logs.String(), "ResultsDB unavailable; results wait in the spool") != 1 {
		t.Errorf("the outage should be logged once:\n%s", logs)
	}
}

// TestOutageServerDown: nothing listens at all, then ResultsDB starts on
// the same address; a fresh Reporter (after a restart) sends the spool.
func TestOutageServerDown(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	addr := srv.Listener.Addr().String()
	srv.Close()
	spool := t.TempDir()
	r, _ := newTestReporter(t, "http://"+addr, spool, nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		d, err := r.Deliver(ctx, execution(fmt.Sprintf("down-%d", i), 2))
		if err != nil || d.Spooled != 2 {
			t.Fatalf("report while down: %+v %v", d, err)
		}
	}
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush while down reported success")
	}
	serveAt(t, addr, f)
	restarted, _ := newTestReporter(t, "http://"+addr, spool, nil)
	if err := restarted.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f.total() != 10 {
		t.Fatalf("stored %d, want 10", f.total())
	}
	// Reporting again after the restart stores nothing new.
	for i := 0; i < 5; i++ {
		restarted.Report(ctx, execution(fmt.Sprintf("down-%d", i), 2))
	}
	if f.total() != 10 {
		t.Fatalf("stored %d after reporting again, want 10", f.total())
	}
}

// TestLostAnswerIsNotADuplicate: ResultsDB stores results but answers
// 500; the reporter looks before sending again and stores no duplicate.
func TestLostAnswerIsNotADuplicate(t *testing.T) {
	f := &fakeResultsDB{storeThenFail: 3}
	srv, _ := startFake(t, f, 0)
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	ctx := context.Background()
	e := execution("lost-answer", 4)
	d, err := r.Deliver(ctx, e)
	if err != nil || d.Stored != 4 || d.Spooled != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	if n := f.count(e.UUID); n != 4 {
		t.Fatalf("stored %d, want 4", n)
	}
	// Server errors that store nothing are retried until they pass.
	f.mu.Lock()
	f.failPosts = 1
	f.mu.Unlock()
	d, err = r.Deliver(ctx, execution("retried", 2))
	if err != nil || d.Stored != 2 || f.count("retried") != 2 {
		t.Fatalf("%+v %v, stored %d", d, err, f.count("retried"))
	}
}

func TestRunSendsTheSpool(t *testing.T) {
	f := &fakeResultsDB{failPosts: 2}
	srv, _ := startFake(t, f, 0)
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Report(ctx, execution("run-loop", 2)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- r.Run(ctx, 10*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.count("run-loop") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := f.count("run-loop"); n != 2 {
		t.Fatalf("stored %d, want 2", n)
	}
}

func TestUnreadableSpoolEntryIsSetAside(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	spool := t.TempDir()
	r, logs := newTestReporter(t, srv.URL, spool, nil)
	os.WriteFile(filepath.Join(spool, "queue", "00000000000000000001-x-0.json"), []byte("{broken"), 0o644)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spool, "rejected", "unreadable-00000000000000000001-x-0.json.reason")); err != nil {
		t.Errorf("not set aside: %v", err)
	}
	if !strings.Contains(logs.String(), "unreadable spool entry") {
		t.Errorf("not logged")
	}
}

func TestStoredResultFromRealResultsDB(t *testing.T) {
	raw := `{"id": 7484989, "groups": ["27f94e36-62ec-11e6-83fd-525400d7d6a4"], "testcase": {"name": "dist.rpmlint", "ref_url": "https://x", "href": "h"},
	"submit_time": "2016-08-15T13:29:06.123456", "outcome": "PASSED", "note": null, "ref_url": "https://a/b",
	"data": {"item": ["koschei-1.7.2-1.fc24"], "type": ["koji_build"], "arch": ["x86_64", "noarch"]}, "href": "h"}`
	var s StoredResult
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	if s.ID != "7484989" || s.Testcase != "dist.rpmlint" || s.Note != "" || len(s.Data["arch"]) != 2 || s.Groups[0] != "27f94e36-62ec-11e6-83fd-525400d7d6a4" {
		t.Errorf("%+v", s)
	}
	if want := time.Date(2016, 8, 15, 13, 29, 6, 123456000, time.UTC); !s.SubmitTime.Equal(want) {
		t.Errorf("submit_time = %v", s.SubmitTime)
	}
	// Same post, as we would send it: the fingerprints agree.
	p := contract.ResultsDBPost{Outcome: "PASSED", Testcase: contract.TestcaseRef{Name: "dist.rpmlint"}, RefURL: "https://a/b",
		Data: map[string]any{"item": "koschei-1.7.2-1.fc24", "type": "koji_build", "arch": []string{"noarch", "x86_64"}}}
	if postFingerprint(p) != storedFingerprint(s) {
		t.Errorf("fingerprints differ")
	}
	for _, v := range []string{"2016-08-15T13:29:06", "2016-08-15T13:29:06Z", "2016-08-15T15:29:06+02:00"} {
		if tm, err := ParseSubmitTime(v); err != nil || tm.Hour() != 13 {
			t.Errorf("%s: %v %v", v, tm, err)
		}
	}
	if _, err := ParseSubmitTime("yesterday"); err == nil {
		t.Errorf("bad time accepted")
	}
}

// Stored tells an execution reported here (stored, or spooled while
// ResultsDB is away), or stored by another reporter, from one never
// reported; while ResultsDB is away it cannot tell another host's.
func TestStoredSaysWhetherAnExecutionWasReported(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	ctx := context.Background()
	here, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	other, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	if err := here.Report(ctx, execution("stored-here", 1)); err != nil {
		t.Fatal(err)
	}
	if err := other.Report(ctx, execution("stored-there", 1)); err != nil {
		t.Fatal(err)
	}
	for uuid, want := range map[string]bool{"stored-here": true, "stored-there": true, "never": false} {
		if got, err := here.Stored(ctx, uuid); err != nil || got != want {
			t.Errorf("Stored(%s) = %v, %v; want %v", uuid, got, err, want)
		}
	}
	addr := srv.Listener.Addr().String()
	srv.Close()
	if err := here.Report(ctx, execution("spooled-here", 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := here.Stored(ctx, "spooled-here"); err != nil || !got {
		t.Errorf("Stored(spooled-here) while ResultsDB is away = %v, %v; want true", got, err)
	}
	if got, err := here.Stored(ctx, "stored-there"); err == nil {
		t.Errorf("Stored(stored-there) while ResultsDB at %s is away = %v without an error", addr, got)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"localhost:5001", "ftp://x", "http://"} {
		if _, err := New(Options{ResultsDBURL: u, SpoolDir: t.TempDir()}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// BenchmarkReportTestServer reports executions of 10 results each to the
// in-memory test double and prints results posted per second: the
// reporter's own cost (HTTP, spool markers, fsync).
func BenchmarkReportTestServer(b *testing.B) {
	f := &fakeResultsDB{}
	srv := httptestServer(f)
	defer srv.Close()
	r, err := New(Options{ResultsDBURL: srv.URL, SpoolDir: b.TempDir(), ArtifactsURL: "https://a", HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n++
		if err := r.Report(ctx, execution(fmt.Sprintf("bench-%d", n), 10)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*10)/b.Elapsed().Seconds(), "results/s")
}

// TestTwoProcessesShareASpool: a worker and `report --flush` on the same
// spool folder send each spooled post once.
func TestTwoProcessesShareASpool(t *testing.T) {
	f := &fakeResultsDB{failPosts: 1000}
	srv, _ := startFake(t, f, 0)
	spool := t.TempDir()
	a, _ := newTestReporter(t, srv.URL, spool, func(o *Options) { o.Recheck = time.Hour })
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := a.Report(ctx, execution(fmt.Sprintf("shared-%d", i), 3)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := a.Spooled(); n != 30 {
		t.Fatalf("%d spooled, want 30", n)
	}
	f.mu.Lock()
	f.failPosts = 0
	f.mu.Unlock()
	b, _ := newTestReporter(t, srv.URL, spool, nil)
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
	if f.total() != 30 {
		t.Fatalf("stored %d, want 30", f.total())
	}
}

// TestRefusedConnectionSpoolsAtOnce: when nothing listens at ResultsDB's
// address the results go to the spool without waiting through retries
// (they are sent when ResultsDB is back).
func TestRefusedConnectionSpoolsAtOnce(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	addr := srv.Listener.Addr().String()
	srv.Close()
	r, logs := newTestReporter(t, "http://"+addr, t.TempDir(), func(o *Options) {
		o.RetryMax, o.RetryWaitMin, o.RetryWaitMax = 4, 50*time.Millisecond, time.Second
	})
	d, err := r.Deliver(context.Background(), execution("refused-1", 2))
	if err != nil || d.Spooled != 2 {
		t.Fatalf("%+v %v", d, err)
	}
	if strings.Contains(logs.String(), "retrying ResultsDB request") {
		t.Errorf("a refused connection was retried:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the log should say why the results were spooled:\n%s", logs)
	}
	serveAt(t, addr, f)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.count("refused-1"); n != 2 {
		t.Fatalf("stored %d after ResultsDB came back, want 2", n)
	}
}

// An execution whose posts ResultsDB holds leaves no marker in the spool
// (ResultsDB itself tells a second report that every post is there); one
// whose posts wait in the spool is marked, so that a second report while
// ResultsDB is away queues nothing twice.
func TestReportedMarkerOnlyWhereResultsDBCannotTell(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	spool := t.TempDir()
	r, _ := newTestReporter(t, srv.URL, spool, nil)
	ctx := context.Background()
	e := execution("00000001-stored", 3)
	for range 2 {
		if err := r.Report(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.total(); n != 3 {
		t.Fatalf("ResultsDB holds %d results after two reports of 3; want 3", n)
	}
	markers := func() []string {
		names, _ := filepath.Glob(filepath.Join(spool, "reported", "*"))
		return names
	}
	if m := markers(); len(m) != 0 {
		t.Errorf("markers after a report ResultsDB took whole: %v", m)
	}
	srv.Close()
	away := execution("00000002-spooled", 2)
	for range 2 {
		if err := r.Report(ctx, away); err != nil {
			t.Fatal(err)
		}
	}
	if m := markers(); len(m) != 1 || filepath.Base(m[0]) != "00000002-spooled" {
		t.Errorf("markers after a spooled report: %v; want the spooled execution's", m)
	}
	if n, err := r.Spooled(); err != nil || n != 2 {
		t.Errorf("spooled after two reports of 2 posts while away = %d, %v; want 2", n, err)
	}
}

// An execution whose results are in a file (a run with more than it holds
// in memory) is delivered from the file, in order; a second report stores
// nothing twice, and a file that is not there fails the report, naming it.
func TestReportFromAResultsFile(t *testing.T) {
	f := &fakeResultsDB{}
	srv, _ := startFake(t, f, 0)
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	e := execution("00000003-from-file", 40)
	e.Artifacts = t.TempDir()
	out, err := os.Create(filepath.Join(e.Artifacts, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w := results.NewResultWriter(out, io.Discard)
	for _, res := range e.Results {
		if err := w.Write(res); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(w.Flush(), out.Close()); err != nil {
		t.Fatal(err)
	}
	e.Results, e.ResultsFile, e.ResultCount = nil, "results.jsonl", w.Count()
	ctx := context.Background()
	for range 2 {
		if err := r.Report(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count(e.UUID); n != 40 {
		t.Fatalf("ResultsDB holds %d of the file's 40 results", n)
	}
	f.mu.Lock()
	second := f.results[1]["note"]
	f.mu.Unlock()
	if second != "0 warnings" {
		t.Errorf("second result stored has note %v: out of order", second)
	}
	gone := execution("00000004-file-gone", 0)
	gone.Artifacts, gone.ResultsFile, gone.ResultCount = t.TempDir(), "results.jsonl", 3
	if err := r.Report(ctx, gone); err == nil || !strings.Contains(err.Error(), "results.jsonl") {
		t.Errorf("report of a missing results file: %v; want an error naming it", err)
	}
}
