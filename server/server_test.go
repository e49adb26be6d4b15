package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/sqldb/sqldbtest"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
)

const token = "exec-s3cret"

// central is a central server for a test, over a real socket, on SQLite
// files in a folder of its own, as `taskotron resultsdb serve` runs it.
type central struct {
	url    string
	cfg    config.Config
	client *execdb.Client // with the token: it may write
}

// startCentral serves until the test ends; prepare may fill the databases
// first (the server opens them after).
func startCentral(t testing.TB, prepare func(cfg config.Config), change ...func(*config.Config)) *central {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ExecDB.Token = token
	cfg = cfg.Resolved()
	for _, f := range change {
		f(&cfg)
	}
	if prepare != nil {
		prepare(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, nil, Options{Listen: "127.0.0.1:0", ArtifactsDir: cfg.Runner.ArtifactsDir, BaseURL: cfg.ResultsDB.BaseURL})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("central server: %v", err)
		}
	})
	c, err := execdb.NewClient(srv.URL(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &central{url: srv.URL(), cfg: cfg, client: c}
}

func event(id, uuid string, attempt int, state string, at time.Time) contract.ExecutionEvent {
	return contract.ExecutionEvent{ID: id, UUID: uuid, Attempt: attempt, State: state, Time: at}
}

func queued(uuid, task, item, arch string, prio int, at time.Time) contract.ExecutionEvent {
	e := event("trigger-"+uuid, uuid, 0, contract.StateQueued, at)
	e.TaskName, e.Item, e.ItemType, e.Arch, e.Priority, e.Rule = task, item, "koji_build", arch, prio, "rules.yml:1"
	return e
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %s, not JSON: %v", u, resp.Status, err)
	}
	return resp.StatusCode
}

func uuids(es []execdb.Execution) string {
	var out []string
	for _, e := range es {
		out = append(out, e.UUID)
	}
	return strings.Join(out, " ")
}

// TestExecutionsAPIFiltersAndPagesLikeResultsDB: the list filters by state,
// item, task, arch and since, newest first, in pages with absolute prev and
// next links (null at the ends) as ResultsDB's API has them; the queue
// lists what waits in the order it will run, priority first, then age.
func TestExecutionsAPIFiltersAndPagesLikeResultsDB(t *testing.T) {
	c := startCentral(t, nil)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	evs := []contract.ExecutionEvent{
		queued("e1", "rpmlint", "xchat-0.5-1.fc20", "x86_64", 0, ago(50*time.Minute)),
		queued("e2", "rpmlint", "xchat-0.5-1.fc20", "noarch", 0, ago(40*time.Minute)),
		queued("e3", "depcheck", "xchat-0.5-1.fc20", "x86_64", 5, ago(30*time.Minute)),
		queued("e4", "rpmlint", "nano-7.2-1.fc40", "x86_64", 0, ago(20*time.Minute)),
		queued("e5", "rpmlint", "nano-7.2-1.fc40", "x86_64", 5, ago(10*time.Minute)),
		queued("e6", "depcheck", "nano-7.2-1.fc40", "x86_64", 0, ago(3*time.Hour)),
	}
	run := event("w-1", "e4", 1, contract.StateRunning, ago(15*time.Minute))
	run.Worker, run.Action = "host:1", "run"
	done := event("w-2", "e6", 1, contract.StateFinished, ago(2*time.Hour))
	done.ExecutionStatus, done.Outcome, done.Results = "OK", contract.Passed, 1
	retryAt := now.Add(5 * time.Minute)
	retry := event("w-3", "e7", 1, contract.StateWaitingRetry, ago(time.Minute))
	retry.Worker, retry.RetryAt, retry.Reason = "host:2", &retryAt, "koji unreachable"
	evs = append(evs, run, done, queued("e7", "rpmlint", "vim-9.1-1.fc41", "x86_64", 9, ago(2*time.Hour+time.Minute)), retry)
	if err := c.client.Post(ctx, evs); err != nil {
		t.Fatal(err)
	}
	api := c.url + execdb.APIPrefix

	for _, f := range []struct{ query, want string }{
		{"", "e5 e4 e3 e2 e1 e7 e6"},
		{"state=queued", "e5 e3 e2 e1"},
		{"state=running,finished", "e4 e6"},
		{"state=waiting_retry", "e7"},
		{"item=nano-7.2-1.fc40", "e5 e4 e6"},
		{"taskname=depcheck", "e3 e6"},
		{"arch=noarch", "e2"},
		{"since=1h", "e5 e4 e3 e2 e1"},
		{"since=" + url.QueryEscape(ago(35*time.Minute).Format(time.RFC3339)), "e5 e4 e3"},
		{"state=queued&item=xchat-0.5-1.fc20&arch=x86_64", "e3 e1"},
	} {
		var p execdb.Page
		if code := getJSON(t, api+"/executions?"+f.query, &p); code != 200 || uuids(p.Data) != f.want {
			t.Errorf("?%s: %d %q, want %q", f.query, code, uuids(p.Data), f.want)
		}
	}

	// Pages of two, walked by their links.
	var p execdb.Page
	getJSON(t, api+"/executions?limit=2", &p)
	var seen []string
	for pages := 1; ; pages++ {
		seen = append(seen, uuids(p.Data))
		if pages == 1 && p.Prev != nil {
			t.Errorf("the first page has a prev link %s", *p.Prev)
		}
		if p.Next == nil {
			break
		}
		if !strings.HasPrefix(*p.Next, c.url+"/api/v2.0/executions?") {
			t.Fatalf("next link %q is not an absolute link to the list", *p.Next)
		}
		next := *p.Next
		p = execdb.Page{}
		getJSON(t, next, &p)
		if p.Prev == nil {
			t.Fatalf("page %d has no prev link", pages+1)
		}
	}
	if strings.Join(seen, " | ") != "e5 e4 | e3 e2 | e1 e7 | e6" {
		t.Errorf("pages: %q", strings.Join(seen, " | "))
	}
	var prev execdb.Page
	getJSON(t, *p.Prev, &prev)
	if uuids(prev.Data) != "e1 e7" {
		t.Errorf("the last page's prev: %q", uuids(prev.Data))
	}

	// The queue: what waits, in run order; what runs, with its worker.
	var q execdb.Queue
	getJSON(t, api+"/queue", &q)
	if uuids(q.Waiting) != "e3 e5 e1 e2" || uuids(q.Running) != "e4" || q.Running[0].Worker != "host:1" || q.Running[0].Action != "run" {
		t.Errorf("queue: waiting %q (want e3 e5 e1 e2: priority 5 oldest first, then 0), running %+v", uuids(q.Waiting), q.Running)
	}
	// A job waiting for its retry runs when its time comes, whatever its
	// priority: it is apart.
	if uuids(q.Retrying) != "e7" || q.Retrying[0].RetryAt == nil || !q.Retrying[0].RetryAt.Equal(retryAt) {
		t.Errorf("retrying: %+v", q.Retrying)
	}
	// The queue page lists them in the same order.
	page := fetch(t, c.url+"/queue")
	waiting := page[strings.Index(page, "<h2>Waiting"):]
	last := -1
	for _, u := range []string{"e3", "e5", "e1", "e2"} {
		i := strings.Index(waiting, "/executions/"+u+`"`)
		if i < last {
			t.Errorf("the queue page lists %s out of run order", u)
		}
		last = i
	}

	// Wrong filters get one line naming them; writes need the token.
	for _, bad := range []struct{ query, says string }{
		{"state=lost", `state "lost"`}, {"limit=0", `limit "0"`}, {"since=yesterday", `since "yesterday"`}, {"page=x", `page "x"`},
	} {
		var ans map[string]string
		if code := getJSON(t, api+"/executions?"+bad.query, &ans); code != 400 || !strings.Contains(ans["message"], bad.says) {
			t.Errorf("?%s: %d %v, want 400 naming %s", bad.query, code, ans, bad.says)
		}
	}
	// The history page filters the same way, and says what is wrong with a
	// filter on the page.
	if page := fetch(t, c.url+"/executions?state=queued&item=nano-7.2-1.fc40"); !strings.Contains(page, `/executions/e5"`) || strings.Contains(page, `/executions/e4"`) {
		t.Errorf("the history page filtered by state and item:\n%s", page)
	}
	resp, err := http.Get(c.url + "/executions?since=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `since &#34;yesterday&#34;`) {
		t.Errorf("a bad filter on the history page: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	// Ops see them on the server's /metrics.
	metrics := fetch(t, c.url+"/metrics")
	for _, want := range []string{`taskotron_executions{state="queued"} 4`, `taskotron_executions{state="waiting_retry"} 1`,
		`taskotron_execution_queue_wait_seconds_count{task="rpmlint"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	anon, _ := execdb.NewClient(c.url, "", nil)
	if err := anon.Post(ctx, evs[:1]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("events without the token: %v, want 401", err)
	}
}

// TestExecutionsLinksStartWithTheBaseURL: behind a proxy, with
// resultsdb.base_url set, the list's links start with it, as ResultsDB's do.
func TestExecutionsLinksStartWithTheBaseURL(t *testing.T) {
	c := startCentral(t, nil, func(cfg *config.Config) { cfg.ResultsDB.BaseURL = "https://taskotron.example.org/" })
	now := time.Now().UTC()
	if err := c.client.Post(context.Background(), []contract.ExecutionEvent{
		queued("b1", "rpmlint", "a-1-1", "x86_64", 0, now.Add(-time.Minute)), queued("b2", "rpmlint", "b-1-1", "x86_64", 0, now),
	}); err != nil {
		t.Fatal(err)
	}
	var p execdb.Page
	getJSON(t, c.url+execdb.APIPrefix+"/executions?limit=1", &p)
	if p.Next == nil || !strings.HasPrefix(*p.Next, "https://taskotron.example.org/api/v2.0/executions?") {
		t.Errorf("next link %v, want it on https://taskotron.example.org/", p.Next)
	}
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	return string(body)
}

// TestJobsLinkLeadsToTheExecution: results' groups link to
// <reporter.execdb_url>/jobs/<uuid> (Taskotron's ExecDB links); on the
// central server that is the execution's page. An unknown uuid is a 404.
func TestJobsLinkLeadsToTheExecution(t *testing.T) {
	c := startCentral(t, nil)
	now := time.Now().UTC()
	if err := c.client.Post(context.Background(), []contract.ExecutionEvent{queued("a1b2c3", "rpmlint", "xchat-0.5-1.fc20", "x86_64", 0, now)}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(c.url + "/jobs/a1b2c3")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/executions/a1b2c3" || !strings.Contains(string(body), "rpmlint on xchat-0.5-1.fc20") {
		t.Errorf("/jobs/a1b2c3: %s at %s\n%s", resp.Status, resp.Request.URL, body)
	}
	resp, err = http.Get(c.url + "/jobs/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/jobs/nosuch: %s, want 404", resp.Status)
	}
}

// TestRetentionPrunesOldExecutionsTheirLogsAndArtifacts: on start (and
// hourly) the server deletes the executions that ended longer than
// execdb.retention ago, with their logs and uploaded artifacts; newer ones,
// and one that still waits, stay.
func TestRetentionPrunesOldExecutionsTheirLogsAndArtifacts(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	day := 24 * time.Hour
	c := startCentral(t, func(cfg config.Config) {
		if cfg.ExecDB.Retention != 90*day {
			t.Fatalf("default execdb.retention %s, want 90 days", cfg.ExecDB.Retention)
		}
		s, err := execdb.Open(ctx, cfg.ExecDB.DB)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		old := event("w-old", "old", 1, contract.StateFinished, now.Add(-100*day))
		recent := event("w-recent", "recent", 1, contract.StateFinished, now.Add(-80*day))
		if _, err := s.Apply(ctx, []contract.ExecutionEvent{
			queued("old", "rpmlint", "a-1-1", "x86_64", 0, now.Add(-101*day)), old,
			queued("recent", "rpmlint", "b-1-1", "x86_64", 0, now.Add(-81*day)), recent,
			queued("waiting", "rpmlint", "c-1-1", "x86_64", 0, now.Add(-100*day)),
		}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"old", "recent"} {
			if _, err := s.AppendLog(ctx, u, 1, "taskotron.log", 0, []byte("the run\n")); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(cfg.Runner.ArtifactsDir, u), 0o755)
			os.WriteFile(filepath.Join(cfg.Runner.ArtifactsDir, u, "out.txt"), []byte(u), 0o644)
		}
	})
	// The prune deletes the execution's rows, then its artifacts: wait
	// for both.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.client.Get(ctx, "old")
		_, serr := os.Stat(filepath.Join(c.cfg.Runner.ArtifactsDir, "old"))
		if err != nil && strings.Contains(err.Error(), "not found") && os.IsNotExist(serr) {
			break
		}
		if time.Now().After(deadline) {
			if err == nil || !strings.Contains(err.Error(), "not found") {
				t.Fatalf("the execution that ended 100 days ago is still there: %v", err)
			}
			t.Fatalf("its artifacts are still there: %v", serr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, err := c.client.ReadLog(ctx, "old", 1, "taskotron.log", 0, 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("its log: %v, want a 404", err)
	}
	for _, u := range []string{"recent", "waiting"} {
		if _, err := c.client.Get(ctx, u); err != nil {
			t.Errorf("%s was pruned: %v", u, err)
		}
	}
	if data, _, err := c.client.ReadLog(ctx, "recent", 1, "taskotron.log", 0, 0); err != nil || string(data) != "the run\n" {
		t.Errorf("the recent one's log: %q %v", data, err)
	}
	if got := fetch(t, c.url+"/artifacts/recent/out.txt"); got != "recent" {
		t.Errorf("the recent one's artifacts: %q", got)
	}
}

// freshSchema makes a schema of its own in the PostgreSQL test database,
// dropped at the end, and returns a DSN that uses it.
func freshSchema(tb testing.TB) string { return sqldbtest.FreshSchema(tb, "serverbench") }
