package resultsdb

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Many runners report at once: every post is stored once, and shared
// groups and testcases are created once.
func TestConcurrentPosts(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		const workers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan string, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					body := post("PASSED", fmt.Sprintf("dist.check%d", i%3), fmt.Sprintf("pkg-%d-%d", w, i), "koji_build", nil)
					body["groups"] = []any{
						map[string]any{"uuid": fmt.Sprintf("shared-%d", i%4), "description": "shared"},
						fmt.Sprintf("own-%d", w),
					}
					r := c.post("/api/v2.0/results", body)
					if r.code != 201 {
						errs <- fmt.Sprintf("worker %d post %d: %d %s", w, i, r.code, r.body)
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if m := c.get("/api/v2.0/results?limit=1000").list(t); len(m) != workers*each {
			t.Errorf("%d results stored, want %d", len(m), workers*each)
		}
		if m := c.get("/api/v2.0/groups?limit=100").list(t); len(m) != 4+workers {
			t.Errorf("%d groups, want %d", len(m), 4+workers)
		}
		if m := c.get("/api/v2.0/testcases").list(t); len(m) != 3 {
			t.Errorf("%d testcases, want 3", len(m))
		}
		total := 0.0
		for i := 0; i < 4; i++ {
			total += c.get(fmt.Sprintf("/api/v2.0/groups/shared-%d", i)).json(t)["results_count"].(float64)
		}
		if total != workers*each {
			t.Errorf("shared groups count %v results, want %d", total, workers*each)
		}
	})
}

// A database keeps its results across restarts, and a newer schema than
// this program knows is refused with a clear error.
func TestReopenAndSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "resultsdb.sqlite")
	s, err := Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	in := NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.rpmlint"}, Data: []DataPair{{"item", "x"}}}
	created, err := s.CreateResult(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	got, err := s.Result(t.Context(), created.ID)
	if err != nil || got.Testcase.Name != "dist.rpmlint" || len(got.Data) != 1 {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if _, err := s.(*sqlStore).write.Exec("INSERT INTO schema_version (version) VALUES (?)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(t.Context(), "sqlite:"+path)
	if err == nil || !strings.Contains(err.Error(), "newer than this program knows") {
		t.Errorf("newer schema: %v", err)
	}
}

// A result with more data values than one SQL statement may carry.
func TestManyDataValues(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		values := make([]any, 12000)
		groups := make([]any, 350)
		for i := range values {
			values[i] = fmt.Sprintf("v%d", i)
		}
		for i := range groups {
			groups[i] = fmt.Sprintf("g%d", i)
		}
		body := post("PASSED", "dist.big", "big-1", "koji_build", map[string]any{"files": values})
		body["groups"] = groups
		m := c.mustPost("/api/v2.0/results", body)
		got := c.get(fmt.Sprintf("/api/v2.0/results/%d", int(m["id"].(float64)))).json(t)
		if files := got["data"].(map[string]any)["files"].([]any); len(files) != len(values) || files[11999] != "v11999" {
			t.Errorf("stored %d values", len(files))
		}
		if g := got["groups"].([]any); len(g) != len(groups) {
			t.Errorf("stored %d groups", len(g))
		}
	})
}

// Long values are stored and found on both stores (PostgreSQL indexes a
// prefix); over-long names are refused with a message.
func TestLongValues(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		long := strings.Repeat("é", 3000)
		other := long[:len(long)-2] + "x"
		desc := strings.Repeat("d", 5000)
		for _, v := range []string{long, other} {
			body := post("PASSED", "dist.long", "item", "koji_build", map[string]any{"output": v})
			body["groups"] = []any{map[string]any{"uuid": "long-" + v[len(v)-1:], "description": desc + v[len(v)-1:]}}
			c.mustPost("/api/v2.0/results", body)
		}
		for q, want := range map[string]int{
			"output=" + url.QueryEscape(long):               1,
			"output=" + url.QueryEscape(other):              1,
			"output:like=" + url.QueryEscape(long[:20]+"*"): 2,
			"output:like=*x":                                1,
		} {
			if got := c.get("/api/v2.0/results?" + q).list(t); len(got) != want {
				t.Errorf("%.40s…: %d results, want %d", q, len(got), want)
			}
		}
		if got := c.get("/api/v2.0/groups?description=" + desc + "x").list(t); len(got) != 1 {
			t.Errorf("long description: %d groups", len(got))
		}
		r := c.post("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": strings.Repeat("n", 1001)})
		if r.code != 400 || r.message(t) != "Malformed Request: testcase name is 1001 bytes long; at most 1000" {
			t.Errorf("long testcase name: %d %s", r.code, r.body)
		}
		r = c.post("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": "x", "data": map[string]any{strings.Repeat("k", 1001): 1}})
		if r.code != 400 {
			t.Errorf("long data key: %d %s", r.code, r.body)
		}
	})
}

// Deep pages through two common data filters: SQLite then drives from the
// rarer one (pickDriver's second look); the answer must not change.
func TestCommonFiltersDeepPage(t *testing.T) {
	defer func(old int) { probeCap = old }(probeCap)
	probeCap = 50
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store := openTestStore(t, kind)
			var want []int64
			for i := 0; i < 250; i++ {
				data := []DataPair{{Key: "k", Value: "common"}}
				if i%3 == 0 || i > 240 {
					data = append(data, DataPair{Key: "m", Value: "mid"})
				}
				r, err := store.CreateResult(t.Context(), NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "t"}, Data: data})
				if err != nil {
					t.Fatal(err)
				}
				if len(data) == 2 {
					want = append([]int64{r.ID}, want...)
				}
			}
			q := ResultQuery{Data: []DataFilter{{Key: "k", Values: []string{"common"}}, {Key: "m", Values: []string{"mid"}}}, Offset: 20, Limit: 21}
			if s, ok := store.(*sqlStore); ok && !s.d.dollar {
				if d, _, err := s.pickDriver(t.Context(), q.Data, 41); err != nil || d != 1 {
					t.Errorf("driver %d (%v), want the m filter", d, err)
				}
			}
			got, err := store.Results(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 21 {
				t.Fatalf("%d results, want 21", len(got))
			}
			for i, r := range got {
				if r.ID != want[20+i] {
					t.Fatalf("result %d: id %d, want %d", i, r.ID, want[20+i])
				}
			}
			latest, err := store.Latest(t.Context(), ResultQuery{Data: q.Data}, []string{"m"})
			if err != nil || len(latest) != 1 || latest[0].ID != want[0] {
				t.Errorf("latest: %v %v", latest, err)
			}
		})
	}
}

// PostgreSQL plans every query with its values: a generic plan of a data
// filter query drove by type=koji_build instead of the rare item (36 s
// instead of 0.8 ms at a million results).
func TestPostgresPlansWithValues(t *testing.T) {
	store := openTestStore(t, "postgres").(*sqlStore)
	for i := 0; i < 3; i++ { // on more than one pooled connection
		var mode string
		if err := store.read.QueryRowContext(t.Context(), "SHOW plan_cache_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_custom_plan" {
			t.Fatalf("plan_cache_mode %q, want force_custom_plan", mode)
		}
	}
}

// Read queries are kept prepared on SQLite, up to maxReadStmts of them:
// queries past that (here, group filters of ever more values) are still
// answered, prepared each time.
func TestReadQueriesKeptPreparedAreBounded(t *testing.T) {
	store := openTestStore(t, "sqlite")
	ctx := t.Context()
	if _, err := store.CreateResult(ctx, NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.one"}, Groups: []GroupUpdate{{UUID: "g-0"}}}); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= maxReadStmts+20; n++ {
		groups := []string{"g-0"}
		for i := 1; i < n; i++ {
			groups = append(groups, fmt.Sprintf("g-%d", i))
		}
		for range 2 { // the second time from the kept statement, where one is kept
			list, err := store.Results(ctx, ResultQuery{Groups: groups, Limit: 10})
			if err != nil {
				t.Fatalf("%d groups: %v", n, err)
			}
			if len(list) != 1 || list[0].Testcase.Name != "dist.one" {
				t.Fatalf("%d groups: %d results, want the one in g-0", n, len(list))
			}
		}
	}
	if kept := store.(*sqlStore).readStmtCount.Load(); kept != maxReadStmts {
		t.Errorf("%d read queries kept prepared, want the bound, %d", kept, maxReadStmts)
	}
}
