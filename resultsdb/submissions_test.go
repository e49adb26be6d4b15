package resultsdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/kcidb"
)

func kcidbDoc(t testing.TB, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "kcidb", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// dataOf reads one data value of a result JSON.
func dataOf(m map[string]any, key string) string {
	list, _ := m["data"].(map[string]any)[key].([]any)
	if len(list) == 0 {
		return ""
	}
	s, _ := list[0].(string)
	return s
}

// A CI system submits a KCIDB document with its origin's token: every
// build and test is a result of its origin, found through the usual API.
func TestKCIDBSubmission(t *testing.T) {
	opts := Options{Origins: true, Token: "main", Events: true, AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}
	eachStore(t, opts, func(t *testing.T, c *client, store Store) {
		_, secret, err := store.AddToken(t.Context(), "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		ci := c.withToken(secret)
		r := ci.post("/api/v2.0/submissions", kcidbDoc(t, "v5.3.json"))
		if r.code != 201 {
			t.Fatalf("submission: %d %s", r.code, r.body)
		}
		sub := r.json(t)
		if sub["origin"] != "ci_a" || sub["version"] != "5.3" || sub["upgraded_to"] != nil || sub["builds"] != 1.0 || sub["tests"] != 4.0 ||
			len(sub["results"].([]any)) != 5 || sub["href"] != c.base+"/api/v2.0/results?origin=ci_a" {
			t.Errorf("answer: %s", r.body)
		}

		list := c.get("/api/v2.0/results?origin=ci_a&item=ci_a:build1&_sort=asc:submit_time").list(t)
		if len(list) != 5 {
			t.Fatalf("%d results of the submission, want 5", len(list))
		}
		byTestcase := map[string]map[string]any{}
		for _, m := range list {
			byTestcase[m["testcase"].(map[string]any)["name"].(string)] = m
			if m["origin"] != "ci_a" || dataOf(m, "type") != "kcidb_build" || dataOf(m, "arch") != "x86_64" ||
				dataOf(m, "git_commit_hash") != "e5fb2e1f35d8e6f1a4b1e1b5d1f7d0a6c3b4f2a1" || dataOf(m, "tree_name") != "mainline" {
				t.Errorf("result %v: origin, item type, build and checkout data", m)
			}
			if g := m["groups"].([]any); len(g) != 1 || g[0] != "ci_a:build1" {
				t.Errorf("groups %v, want the build", g)
			}
		}
		for name, want := range map[string]struct{ outcome, status string }{
			"kcidb.build": {"PASSED", "PASS"}, "ltp.sem01": {"PASSED", "PASS"}, "ltp.sem02": {"FAILED", "FAIL"},
			"boot": {"ABORTED", "MISS"}, "kcidb.test": {"INFO", "DONE"},
		} {
			m := byTestcase[name]
			if m == nil || m["outcome"] != want.outcome || dataOf(m, "kcidb_status") != want.status {
				t.Errorf("testcase %s: %v, want outcome %s", name, m, want.outcome)
			}
		}
		sem01, sem02, done := byTestcase["ltp.sem01"], byTestcase["ltp.sem02"], byTestcase["kcidb.test"]
		if sem01["ref_url"] != "https://ci-a.example.org/build1/ltp.log" || dataOf(sem01, "kcidb_id") != "ci_a:test1" ||
			dataOf(sem01, "duration") != "3.25" || dataOf(sem01, "environment") != "QEMU x86_64" || dataOf(sem01, "compatible") != "qemu,x86_64" {
			t.Errorf("ltp.sem01: %v", sem01)
		}
		if sem02["note"] != "semaphore leak" || dataOf(done, "number") != "1.5e+06" || dataOf(done, "number_unit") != "B/s" {
			t.Errorf("note or number: %v %v", sem02, done)
		}
		if g := c.get("/api/v2.0/groups/ci_a:build1").json(t); g["results_count"] != 5.0 || g["ref_url"] != "https://ci-a.example.org/build1/build.log" {
			t.Errorf("the build's group: %v", g)
		}
		// The usual queries: latest per testcase of the build, by outcome.
		if l := c.get("/api/v2.0/results/latest?item=ci_a:build1&type=kcidb_build&_distinct_on=arch").list(t); len(l) != 5 {
			t.Errorf("latest of the build: %d", len(l))
		}
		if l := c.get("/api/v2.0/results?origin=ci_a&outcome=FAILED").list(t); len(l) != 1 {
			t.Errorf("FAILED of ci_a: %d", len(l))
		}
		// Each result is announced, with its origin, through the outbox.
		if ev, err := store.PendingEvents(t.Context(), 100); err != nil || len(ev) != 5 {
			t.Errorf("outbox: %d entries %v, want 5", len(ev), err)
		}

		// An older major: checked as 4.5, upgraded, stored.
		_, secretB, err := store.AddToken(t.Context(), "ci_b")
		if err != nil {
			t.Fatal(err)
		}
		r = c.withToken(secretB).post("/api/v2.0/submissions", kcidbDoc(t, "v4.5.json"))
		if r.code != 201 || r.json(t)["upgraded_to"] != "5.3" || r.json(t)["version"] != "4.5" {
			t.Fatalf("v4.5 submission: %d %s", r.code, r.body)
		}
		for _, m := range c.get("/api/v2.0/results?origin=ci_b").list(t) {
			switch m["testcase"].(map[string]any)["name"] {
			case "kcidb.build":
				if m["outcome"] != "FAILED" || dataOf(m, "arch") != "aarch64" {
					t.Errorf("v4 build with valid false: %v", m)
				}
			case "kselftest.net":
				if m["outcome"] != "CRASHED" || dataOf(m, "waived") != "True" {
					t.Errorf("v4 waived test with ERROR: %v", m)
				}
			default:
				t.Errorf("unexpected result %v", m)
			}
		}
	})
}

// A bad submission stores nothing and says what is wrong, and where.
func TestKCIDBSubmissionRefused(t *testing.T) {
	eachStore(t, Options{Origins: true, Token: "main"}, func(t *testing.T, c *client, store Store) {
		_, secret, err := store.AddToken(t.Context(), "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		ci := c.withToken(secret)
		good := kcidbDoc(t, "v5.3.json")
		long := strings.Repeat("x", 1001)
		for _, bad := range []struct {
			c    *client
			doc  string
			code int
			want string
		}{
			{c.withToken(""), good, 401, "Authorization required: send 'Authorization: Bearer <token>'"},
			{ci, strings.Replace(good, `"status": "FAIL"`, `"status": "BROKEN"`, 1), 400,
				"Malformed Request: KCIDB 5.3: $.tests[1].status: value must be one of 'FAIL', 'ERROR', 'MISS', 'PASS', 'DONE', 'SKIP'"},
			{ci, strings.Replace(good, `"minor": 3`, `"minor": 1`, 1), 400,
				"Malformed Request: KCIDB 5.1: $.tests[1]: additional properties 'input_files' not allowed"},
			{ci, `{"version": {"major": 6}}`, 400, "Malformed Request: KCIDB: $.version.major: version 6 is not supported; supported: 4.0 to 5.3"},
			{ci, `{"tests": [`, 400, "Malformed Request: KCIDB: $: not valid JSON: unexpected EOF"},
			{ci, strings.Replace(good, `"id": "ci_a:test3", "origin": "ci_a"`, `"id": "ci_a:test3", "origin": "ci_b"`, 1), 403,
				"Forbidden: $.tests[2].origin: this token writes results of origin 'ci_a' only, not of origin 'ci_b'"},
			{ci, strings.Replace(good, `"id": "ci_a:build1", "origin": "ci_a"`, `"id": "ci_b:build1", "origin": "ci_a"`, 1), 403,
				"Forbidden: $.builds[0].id 'ci_b:build1' does not start with its origin 'ci_a' followed by ':'"},
			{c.withToken("main"), good, 403, "Forbidden: $.checkouts[0].origin: this token writes results of origin 'taskotron' only, not of origin 'ci_a'"},
			{ci, strings.Replace(good, `"path": "boot"`, `"path": "`+long+`"`, 1), 400, "Malformed Request: $.tests[2] as testcase name is 1001 bytes long; at most 1000"},
		} {
			r := bad.c.post("/api/v2.0/submissions", bad.doc)
			if r.code != bad.code || !strings.HasPrefix(r.message(t), bad.want) {
				t.Errorf("got %d %s\nwant %d %s", r.code, r.body, bad.code, bad.want)
			}
		}
		if r := ci.raw("POST", "/api/v2.0/submissions", good, map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + secret}); r.code != 415 {
			t.Errorf("text/plain: %d %s", r.code, r.body)
		}
		if list := c.get("/api/v2.0/results").list(t); len(list) != 0 {
			t.Errorf("%d results stored from refused submissions", len(list))
		}
		info := c.get("/api/v2.0/submissions").json(t)
		if info["latest"] != kcidb.Latest.String() || len(info["versions"].([]any)) != len(kcidb.Versions()) {
			t.Errorf("GET /submissions: %v", info)
		}
	})
}

// A batch the database refuses halfway leaves nothing behind: one
// transaction for the whole submission.
func TestCreateResultsAllOrNothing(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store := openTestStore(t, kind)
			// The database itself refuses the third result, after two are in.
			sq := store.(*sqlStore)
			ddl := []string{`CREATE TRIGGER refuse BEFORE INSERT ON result WHEN NEW.note = 'refuse me'
				BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`}
			if kind == "postgres" {
				ddl = []string{`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
					IF NEW.note = 'refuse me' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
					`CREATE TRIGGER refuse BEFORE INSERT ON result FOR EACH ROW EXECUTE FUNCTION refuse()`}
			}
			for _, q := range ddl {
				if _, err := sq.write.ExecContext(t.Context(), q); err != nil {
					t.Fatal(err)
				}
			}
			ok := NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "ltp.sem01"}, Origin: "ci_a", Data: []DataPair{{"item", "ci_a:b1"}}}
			bad := ok
			note := "refuse me"
			bad.Note = &note
			_, err := store.CreateResults(t.Context(), []NewResult{ok, ok, bad})
			if err == nil || !strings.Contains(err.Error(), "result 3 of 3") || !strings.Contains(err.Error(), "refused by the test") {
				t.Fatalf("batch with a bad third result: %v", err)
			}
			list, err := store.Results(t.Context(), ResultQuery{})
			if err != nil || len(list) != 0 {
				t.Errorf("after the failed batch: %d results %v, want none", len(list), err)
			}
			if _, err := store.Testcase(t.Context(), "ltp.sem01"); err != ErrNotFound {
				t.Errorf("testcase of the failed batch: %v, want none", err)
			}
			created, err := store.CreateResults(t.Context(), []NewResult{ok, ok})
			if err != nil || len(created) != 2 || created[1].Origin != "ci_a" {
				t.Errorf("good batch: %v %v", created, err)
			}
		})
	}
}

// The decoder and the mapping take any document without failing badly.
func FuzzSubmission(f *testing.F) {
	for _, name := range []string{"v5.3.json", "v4.5.json", "v5.0.json"} {
		f.Add(kcidbDoc(f, name))
	}
	outcomes := append(append([]string{}, BaseOutcomes...), "ABORTED", "CRASHED")
	f.Fuzz(func(t *testing.T, doc string) {
		sub, err := kcidb.Parse([]byte(doc))
		if err != nil {
			return
		}
		batch, err := kcidbResults(sub, "ci_a", outcomes)
		if err != nil {
			if _, ok := err.(*badRequest); !ok && !strings.HasPrefix(err.Error(), "$.") {
				t.Fatalf("mapping error %T: %v", err, err)
			}
			return
		}
		if len(batch) != len(sub.Builds)+len(sub.Tests) {
			t.Fatalf("%d results from %d builds and %d tests", len(batch), len(sub.Builds), len(sub.Tests))
		}
		for _, in := range batch {
			if in.Origin != "ci_a" || !contains(outcomes, in.Outcome) || in.Testcase.Name == "" || checkResultText(in) != nil {
				t.Fatalf("result %+v", in)
			}
		}
	})
}
