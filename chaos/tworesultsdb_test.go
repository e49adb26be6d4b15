package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// Two `taskotron resultsdb serve` processes on one PostgreSQL schema, as
// behind a load balancer: they start together on an empty schema, clients
// post to both at once into the same groups and testcases, and one is
// SIGKILLed mid-stream and started again. Every post ends in a 201 from
// one of them; a post answered 201 is stored once, with its groups; a post
// whose server died before answering is stored at most once more (by the
// retry on the other); each group and testcase exists once.
func TestTwoResultsDBProcessesShareOnePostgres(t *testing.T) {
	ctx := t.Context()
	dsn, drop, err := freshSchema(ctx, envOr("RESULTSDB_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"))
	if err != nil {
		t.Fatalf("PostgreSQL is needed: %v", err)
	}
	defer drop()
	dir := t.TempDir()
	bin := filepath.Join(dir, "taskotron")
	if err := buildTaskotron(ctx, testRoot(t), bin, false); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var servers []*role
	var urls []string
	for i := range 2 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("resultsdb-%d", i+1)
		r := newRole(name, bin, []string{"resultsdb", "serve", "--listen", addr, "--db", dsn},
			append(cleanEnv(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, name)), filepath.Join(dir, name+".log"), log)
		servers, urls = append(servers, r), append(urls, "http://"+addr)
	}
	for _, r := range servers { // together: both migrate the empty schema
		if err := r.start(); err != nil {
			t.Fatal(err)
		}
		defer r.stop(10 * time.Second)
	}
	for i, r := range servers {
		if err := waitResultsDB(ctx, urls[i], r, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	const clients, rounds, testcases = 8, 60, 5
	type post struct {
		own, shared string
		retried     bool // a server failed it before one answered 201
	}
	var (
		mu    sync.Mutex
		posts []post
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	halfway := make(chan struct{})
	var once sync.Once
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				if c == 0 && round == rounds/3 {
					once.Do(func() { close(halfway) })
				}
				p := post{own: fmt.Sprintf("own-%d-%d", c, round), shared: fmt.Sprintf("job-%d", round)}
				body := fmt.Sprintf(`{"outcome": "PASSED", "testcase": {"name": "dist.check%d"}, "groups": [{"uuid": %q}, {"uuid": %q}], "data": {"item": "a-1-1.fc40"}}`,
					round%testcases, p.shared, p.own)
				for attempt := 0; ; attempt++ {
					if attempt == 100 {
						t.Errorf("client %d round %d: no server took the post in %d attempts", c, round, attempt)
						return
					}
					// Each client starts on its own server and moves to the
					// other when one fails it.
					url := urls[(c+attempt)%2] + "/api/v2.0/results"
					code, err := postJSON(ctx, client, url, body)
					if err == nil && code == http.StatusCreated {
						break
					}
					if err == nil && code < 500 {
						t.Errorf("client %d round %d: %s answered %d", c, round, url, code)
						return
					}
					p.retried = true
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				posts = append(posts, p)
				mu.Unlock()
			}
		}()
	}
	<-halfway
	if err := servers[0].kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // as systemd's RestartSec would
	if err := servers[0].start(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := waitResultsDB(ctx, urls[0], servers[0], 60*time.Second); err != nil {
		t.Fatalf("the killed server did not come back: %v", err)
	}
	if len(posts) != clients*rounds {
		t.Fatalf("%d posts answered, want %d", len(posts), clients*rounds)
	}
	retried, twice := 0, 0
	for i, p := range posts {
		// Read back through both servers in turn.
		var page struct {
			Data []struct {
				ID     int64    `json:"id"`
				Groups []string `json:"groups"`
			} `json:"data"`
		}
		getJSON(t, client, urls[i%2]+"/api/v2.0/results?groups="+p.own, &page)
		n := len(page.Data)
		if p.retried {
			retried++
		}
		if n == 2 {
			twice++
		}
		if n == 0 || n > 1 && !p.retried || n > 2 {
			t.Errorf("post %s (failed first: %v): stored %d times", p.own, p.retried, n)
		}
		for _, r := range page.Data {
			if len(r.Groups) != 2 || !slices.Contains(r.Groups, p.shared) {
				t.Errorf("result %d of %s is in groups %v, want %s and its own", r.ID, p.own, r.Groups, p.shared)
			}
		}
	}
	for round := range rounds {
		var g struct {
			UUID string `json:"uuid"`
		}
		getJSON(t, client, fmt.Sprintf("%s/api/v2.0/groups/job-%d", urls[round%2], round), &g)
		if g.UUID != fmt.Sprintf("job-%d", round) {
			t.Errorf("group job-%d reads as %q", round, g.UUID)
		}
	}
	var groups, cases struct {
		Data []struct {
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"data"`
	}
	getJSON(t, client, urls[1]+"/api/v2.0/groups?uuid=job-0&limit=100", &groups)
	if len(groups.Data) != 1 {
		t.Errorf("group job-0 is listed %d times", len(groups.Data))
	}
	getJSON(t, client, urls[0]+"/api/v2.0/testcases?limit=100", &cases)
	var names []string
	for _, c := range cases.Data {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if len(names) != testcases || len(slices.Compact(slices.Clone(names))) != testcases {
		t.Errorf("testcases %v, want dist.check0 … dist.check%d once each", names, testcases-1)
	}
	if servers[0].starts != 2 {
		t.Errorf("the killed server started %d times, want 2", servers[0].starts)
	}
	t.Logf("%d posts to two servers, one SIGKILLed: %d failed on the killed one and went to the other, %d of them stored by both", len(posts), retried, twice)
}

func postJSON(ctx context.Context, client *http.Client, url, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, raw)
	}
}
