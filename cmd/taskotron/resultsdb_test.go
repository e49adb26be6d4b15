package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/pipeline"
	"github.com/taskotron-go/taskotron/resultsdb"
)

// serveOutput collects what a running command logs, for reading while it runs.
type serveOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *serveOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *serveOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

var servingRE = regexp.MustCompile(`api=(http://\S+/api/v2\.0)`)

// startResultsDB runs `taskotron resultsdb serve` with args on a free port
// and returns its API URL and a stop function that returns the exit status.
func startResultsDB(t *testing.T, env []string, args ...string) (api string, stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &serveOutput{}
	done := make(chan int, 1)
	argv := append([]string{"resultsdb", "serve", "--listen", "127.0.0.1:0"}, args...)
	go func() { done <- run(ctx, argv, strings.NewReader(""), out, out, env) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			api = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("resultsdb serve exited %d before serving:\n%s", code, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("resultsdb serve did not log that it serves within 30s:\n%s", out.String())
		}
	}
	stopped := false
	var code int
	stop = func() (int, string) {
		if !stopped {
			stopped = true
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("resultsdb serve did not stop within 20s of its context ending:\n%s", out.String())
			}
		}
		return code, out.String()
	}
	t.Cleanup(func() { stop() })
	return api, stop
}

func httpDo(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, body is not a JSON object: %q", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

const serveResult = `{"outcome": "FAILED", "testcase": {"name": "dist.rpmlint", "ref_url": "https://fedoraproject.org/wiki/Taskotron/Tasks/dist.rpmlint"},
 "groups": [{"uuid": "27f94e36-62ec-11e6-83fd-525400d7d6a4", "ref_url": "https://taskotron.example/execdb/jobs/27f94e36"}],
 "note": "5 errors, 10 warnings", "ref_url": "https://taskotron.example/artifacts/27f94e36/rpmlint.log",
 "data": {"item": "xchat-0.5-1.fc20", "type": "koji_build", "arch": "x86_64"}}`

// checkServes posts one result to a fresh server and reads it back as a
// ResultsDB client would.
func checkServes(t *testing.T, api, token string) {
	t.Helper()
	code, list := httpDo(t, "GET", api+"/results", "", "")
	if code != 200 || list["data"] == nil || len(list["data"].([]any)) != 0 {
		t.Fatalf("GET /results on a fresh database: %d %v, want 200 and no results", code, list)
	}
	code, created := httpDo(t, "POST", api+"/results", token, serveResult)
	if code != 201 {
		t.Fatalf("POST /results: %d %v, want 201", code, created)
	}
	code, got := httpDo(t, "GET", api+"/results?item=xchat-0.5-1.fc20&type=koji_build", "", "")
	data, _ := got["data"].([]any)
	if code != 200 || len(data) != 1 {
		t.Fatalf("GET /results?item=…&type=…: %d %v, want the posted result", code, got)
	}
	r := data[0].(map[string]any)
	if r["outcome"] != "FAILED" || r["id"] != created["id"] {
		t.Errorf("read back %v, want the posted FAILED result %v", r, created["id"])
	}
	if code, _ := httpDo(t, "GET", strings.TrimSuffix(api, "/api/v2.0")+"/healthcheck", "", ""); code != 200 {
		t.Errorf("GET /healthcheck: %d, want 200", code)
	}
}

// A fresh SQLite database, in a folder that does not exist yet, is
// created and migrated on start; results post and read back; the command
// stops with status 0 when its context ends.
func TestResultsDBServeSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "folder", "resultsdb.sqlite")
	api, stop := startResultsDB(t, nil, "--db", "sqlite:"+path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database file was not created: %v", err)
	}
	checkServes(t, api, "")
	code, log := stop()
	if code != 0 {
		t.Errorf("exit %d after stop, want 0:\n%s", code, log)
	}
	if !strings.Contains(log, "resultsdb stopped") {
		t.Errorf("no stop logged:\n%s", log)
	}

	// The same file serves again, with its result kept.
	api, _ = startResultsDB(t, nil, "--db", "sqlite:"+path)
	code2, got := httpDo(t, "GET", api+"/results", "", "")
	if data, _ := got["data"].([]any); code2 != 200 || len(data) != 1 {
		t.Errorf("after a restart: %d %v, want the one result kept", code2, got)
	}
}

// The default database is a SQLite file in data_dir.
func TestResultsDBServeDefaultDatabase(t *testing.T) {
	dir := t.TempDir()
	api, _ := startResultsDB(t, []string{"TASKOTRON_DATA_DIR=" + dir})
	checkServes(t, api, "")
	if _, err := os.Stat(filepath.Join(dir, "resultsdb.sqlite")); err != nil {
		t.Errorf("no resultsdb.sqlite in data_dir: %v", err)
	}
}

// A fresh PostgreSQL schema gets its tables on start.
func TestResultsDBServePostgres(t *testing.T) {
	dsn := "postgres://postgres@127.0.0.1:5432/test"
	if u := os.Getenv("RESULTSDB_TEST_POSTGRES"); u != "" {
		dsn = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("PostgreSQL is needed for this test and is not reachable at %s (set RESULTSDB_TEST_POSTGRES): %v", dsn, err)
	}
	schema := "serve_test_" + strings.ReplaceAll(time.Now().UTC().Format("150405.000000"), ".", "_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		t.Fatalf("create schema %s: %v", schema, err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	api, stop := startResultsDB(t, nil, "--db", dsn+sep+"search_path="+schema)
	checkServes(t, api, "")
	if code, log := stop(); code != 0 {
		t.Errorf("exit %d after stop, want 0:\n%s", code, log)
	}
}

// With --token, writes need the bearer token and reads stay public.
func TestResultsDBServeToken(t *testing.T) {
	api, _ := startResultsDB(t, nil, "--db", "sqlite:"+filepath.Join(t.TempDir(), "r.sqlite"), "--token", "s3cret")
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}} {
		code, body := httpDo(t, "POST", api+"/results", c.token, serveResult)
		if code != c.want || body["message"] == nil {
			t.Errorf("POST with token %q: %d %v, want %d with a message", c.token, code, body, c.want)
		}
	}
	for _, path := range []string{"/testcases", "/groups"} {
		if code, body := httpDo(t, "POST", api+path, "", `{"name": "dist.x", "uuid": "u1"}`); code != 401 {
			t.Errorf("POST %s without token: %d %v, want 401", path, code, body)
		}
	}
	checkServes(t, api, "s3cret")
}

// hrefOf reads back the href of a posted result with the given headers.
func hrefOf(t *testing.T, api string, header map[string]string) string {
	t.Helper()
	req, err := http.NewRequest("GET", api+"/results?limit=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			Href string `json:"href"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Data) != 1 {
		t.Fatalf("GET /results: %d %v %v", resp.StatusCode, page, err)
	}
	return page.Data[0].Href
}

// Without a base URL the links are those of the URL the client asked
// for, also through a proxy; with --base-url (or resultsdb.base_url)
// they are the configured one whatever the request says.
func TestResultsDBServeBaseURL(t *testing.T) {
	api, _ := startResultsDB(t, nil, "--db", "sqlite:"+filepath.Join(t.TempDir(), "r.sqlite"))
	checkServes(t, api, "")
	id := ""
	for _, c := range []struct {
		header map[string]string
		want   string
	}{
		{nil, api},
		{map[string]string{"Host": "resultsdb.example.org"}, "http://resultsdb.example.org/api/v2.0"},
		{map[string]string{"X-Forwarded-Host": "resultsdb.fedoraproject.org", "X-Forwarded-Proto": "https"}, "https://resultsdb.fedoraproject.org/api/v2.0"},
		{map[string]string{"Host": "internal:5001", "X-Forwarded-Host": "rdb.example.org:443", "X-Forwarded-Scheme": "https"}, "https://rdb.example.org/api/v2.0"},
	} {
		href := hrefOf(t, api, c.header)
		got, rest, ok := strings.Cut(href, "/results/")
		if !ok || got != c.want {
			t.Errorf("headers %v: href %q, want it under %s/results/", c.header, href, c.want)
		}
		if id != "" && rest != id {
			t.Errorf("headers %v: href %q names another result than %s", c.header, href, id)
		}
		id = rest
	}

	for _, args := range [][]string{{"--base-url", "https://resultsdb.example.org/prefix/"}, {}} {
		env := []string{"TASKOTRON_RESULTSDB_BASE_URL=https://resultsdb.example.org/prefix"}
		api, _ := startResultsDB(t, env, append([]string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "r.sqlite")}, args...)...)
		checkServes(t, api, "")
		href := hrefOf(t, api, map[string]string{"X-Forwarded-Host": "elsewhere.example.org", "X-Forwarded-Proto": "http"})
		if !strings.HasPrefix(href, "https://resultsdb.example.org/prefix/api/v2.0/results/") {
			t.Errorf("base URL from %v (and resultsdb.base_url): href %q", args, href)
		}
	}
}

// Bad command lines get one line on stderr and exit status 2; a database
// that is well named but cannot be reached gets one line and status 1.
func TestResultsDBServeErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no serve", []string{"resultsdb"}, 2, []string{"usage: taskotron resultsdb serve"}},
		{"other verb", []string{"resultsdb", "start"}, 2, []string{"usage"}},
		{"unknown db scheme", []string{"resultsdb", "serve", "--db", "mysql://root@localhost/r"}, 2, []string{"--db", "mysql://root@localhost/r", "sqlite:PATH"}},
		{"sqlite without path", []string{"resultsdb", "serve", "--db", "sqlite:"}, 2, []string{"--db", "sqlite needs a path"}},
		{"malformed postgres url", []string{"resultsdb", "serve", "--db", "postgres://u:pw@localhost:notaport/r"}, 2, []string{"--db", "invalid port"}},
		{"extra argument", []string{"resultsdb", "serve", "now"}, 2, []string{"now"}},
		{"base url without scheme", []string{"resultsdb", "serve", "--base-url", "resultsdb.example.org"}, 2, []string{"--base-url", "resultsdb.example.org"}},
		{"base url with a query", []string{"resultsdb", "serve", "--base-url", "https://h/?x=1"}, 2, []string{"--base-url", "https://h/?x=1"}},
		{"publish without broker", []string{"resultsdb", "serve", "--publish", "--db", "sqlite:" + filepath.Join(dir, "p.sqlite")}, 2, []string{"amqp.url"}},
		{"postgres not reachable", []string{"resultsdb", "serve", "--listen", "127.0.0.1:0", "--db", "postgres://u:pw@127.0.0.1:1/r?connect_timeout=5"}, 1, []string{"postgres", "127.0.0.1:1"}},
		{"bad listen address", []string{"resultsdb", "serve", "--listen", "127.0.0.1:http-ish", "--db", "sqlite:" + filepath.Join(dir, "l.sqlite")}, 1, []string{"listen", "127.0.0.1:http-ish"}},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, nil, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", c.name, code, c.code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not mention %q", c.name, stderr, w)
			}
		}
		if strings.Contains(stderr, "pw@") {
			t.Errorf("%s: stderr shows the password: %q", c.name, stderr)
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
			t.Errorf("%s: %d lines, want one: %q", c.name, n+1, stderr)
		}
	}
}

// With resultsdb.publish, `up` sends a resultsdb.result.new message for
// every result it stores, before it returns, and leaves the outbox empty.
func TestUpPublishesResultEvents(t *testing.T) {
	url := "amqp://guest:guest@127.0.0.1:5672/"
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("RabbitMQ is needed for this test and is not reachable at %s: %v", url, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A private exchange, so results that other tests publish stay out.
	exchange := "test.up-events." + strings.ReplaceAll(time.Now().UTC().Format("150405.000000"), ".", "")
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, resultsdb.DefaultTopic, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + dir, "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0",
		"TASKOTRON_RESULTSDB_PUBLISH=true", "TASKOTRON_AMQP_URL=" + url, "TASKOTRON_AMQP_EXCHANGE=" + exchange}
	code, stdout, stderr := runCLI(t, env, "--log-level", "warn", "up", "--once", "--json",
		"--tasks", "../../tasks", "--fakes", "../../fixtures",
		"../../fixtures/messages/koji-build-state-change__6.json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	var s pipeline.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout)
	}

	store, err := resultsdb.Open(context.Background(), "sqlite:"+filepath.Join(dir, "resultsdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored, err := store.Results(context.Background(), resultsdb.ResultQuery{})
	if err != nil || len(stored) == 0 {
		t.Fatalf("results stored by up: %d, %v; want some", len(stored), err)
	}
	if left, err := store.PendingEvents(context.Background(), 10); err != nil || len(left) != 0 {
		t.Errorf("outbox after up returned: %v %v, want empty", left, err)
	}
	seen := map[float64]bool{}
	for len(seen) < len(stored) {
		select {
		case m := <-deliveries:
			var body struct {
				ID       float64 `json:"id"`
				Outcome  string  `json:"outcome"`
				Href     string  `json:"href"`
				Testcase struct {
					Name string `json:"name"`
				} `json:"testcase"`
			}
			if err := json.Unmarshal(m.Body, &body); err != nil || body.Testcase.Name == "" || body.Outcome == "" {
				t.Fatalf("message is not a ResultsDB v2 result: %v %q", err, m.Body)
			}
			if !strings.HasPrefix(body.Href, strings.TrimSuffix(s.URL, "/")+"/api/v2.0/results/") {
				t.Errorf("href %q does not point at the embedded ResultsDB %s", body.Href, s.URL)
			}
			seen[body.ID] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d result messages arrived (stderr: %s)", len(seen), len(stored), stderr)
		}
	}
}

// resultsdb.publish without a broker is one clear line, not a silent
// server that never sends.
func TestUpPublishNeedsBroker(t *testing.T) {
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir(), "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0", "TASKOTRON_RESULTSDB_PUBLISH=true"}
	code, _, stderr := runCLI(t, env, "--log-level", "warn", "up", "--once", "--tasks", "../../tasks", "--fakes", "../../fixtures",
		"../../fixtures/messages/koji-build-state-change__6.json")
	if code == 0 || !strings.Contains(stderr, "amqp.url") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want a failure naming amqp.url in one line", code, stderr)
	}
}
