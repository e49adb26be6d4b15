package resultsdb

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestResultBatchStoresAllInOrder(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		group := randomName("batch")
		var batch []any
		for i := range 5 {
			p := post([]string{"PASSED", "FAILED"}[i%2], fmt.Sprintf("dist.check%d", i), "foo-1-1.fc40", "koji_build", nil)
			p["groups"] = []any{group}
			p["note"] = fmt.Sprintf("note %d", i)
			batch = append(batch, p)
		}
		r := c.post("/api/v2.0/results/batch", batch)
		if r.code != http.StatusCreated {
			t.Fatalf("batch: %d %s", r.code, r.body)
		}
		created := r.list(t)
		if len(created) != 5 {
			t.Fatalf("batch answered %d results, want 5: %s", len(created), r.body)
		}
		for i, res := range created {
			if tc := res["testcase"].(map[string]any)["name"]; tc != fmt.Sprintf("dist.check%d", i) || res["note"] != fmt.Sprintf("note %d", i) {
				t.Errorf("answer %d is %v %v, want the post in that place", i, tc, res["note"])
			}
		}
		stored := c.get("/api/v2.0/groups/" + group + "/results").list(t)
		if len(stored) != 5 {
			t.Fatalf("group holds %d results, want 5", len(stored))
		}
		// Newest first, as ResultsDB lists: the batch's order is kept.
		got, want := ids(t, stored), ids(t, created)
		for i := range want {
			if got[len(got)-1-i] != want[i] {
				t.Fatalf("group lists ids %v, the batch answered %v", got, want)
			}
		}
		if one := c.get(fmt.Sprintf("/api/v2.0/results/%d", want[2])).json(t); one["outcome"] != "PASSED" || one["note"] != "note 2" {
			t.Errorf("GET of a batch's result: %v", one)
		}
	})
}

func TestResultBatchIsAllOrNone(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		group := randomName("batch")
		good := post("PASSED", "dist.good", "foo-1-1.fc40", "koji_build", nil)
		good["groups"] = []any{group}
		bad := post("SOMEWHAT", "dist.bad", "foo-1-1.fc40", "koji_build", nil)
		bad["groups"] = []any{group}
		for _, c2 := range []struct {
			body any
			code int
			want string
		}{
			{[]any{good, good, bad}, 400, "Malformed Request: result 2 of the batch: outcome must be one of"},
			{[]any{good, "dist.x"}, 400, "Malformed Request: result 1 of the batch: a result must be a JSON object, not a string"},
			{[]any{good, map[string]any{"testcase": "dist.x"}}, 400, "Malformed Request: result 1 of the batch: outcome: missing required parameter"},
			{good, 400, "Malformed Request: the body must be a JSON list of results, not an object"},
			{"", 400, "Malformed Request: the body is empty; send a JSON list of results"},
			{"[1,", 400, "Malformed Request: the body is not valid JSON"},
			{make([]any, MaxBatchResults+1), 413, fmt.Sprintf("Batch of %d results; at most %d", MaxBatchResults+1, MaxBatchResults)},
		} {
			r := c.post("/api/v2.0/results/batch", c2.body)
			if r.code != c2.code || !strings.HasPrefix(r.message(t), c2.want) {
				t.Errorf("batch: %d %q\nwant %d %q", r.code, r.message(t), c2.code, c2.want)
			}
		}
		if r := c.get("/api/v2.0/results?testcases=dist.good,dist.bad"); len(r.list(t)) != 0 {
			t.Errorf("refused batches stored results: %s", r.body)
		}
		if r := c.get("/api/v2.0/groups/" + group); r.code != http.StatusNotFound {
			t.Errorf("refused batches made their group: %d %s", r.code, r.body)
		}
		if r := c.get("/api/v2.0/results/batch"); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Errorf("GET of the batch: %d, Allow %q", r.code, r.header.Get("Allow"))
		}
	})
}

func TestResultBatchWritesAsItsToken(t *testing.T) {
	eachStore(t, Options{Origins: true, Token: "the-old-token"}, func(t *testing.T, c *client, store Store) {
		_, secret, err := store.AddToken(t.Context(), "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		p := post("PASSED", "dist.rpmlint", "foo-1-1.fc40", "koji_build", nil)
		if r := c.post("/api/v2.0/results/batch", []any{p}); r.code != http.StatusUnauthorized {
			t.Errorf("batch without a token: %d %s", r.code, r.body)
		}
		other := post("PASSED", "dist.rpmlint", "foo-1-1.fc40", "koji_build", nil)
		other["origin"] = "ci_b"
		r := c.withToken(secret).post("/api/v2.0/results/batch", []any{p, other})
		if r.code != http.StatusForbidden || !strings.HasPrefix(r.message(t), "result 1 of the batch: Forbidden: this token writes results of origin 'ci_a' only") {
			t.Errorf("batch naming another origin: %d %s", r.code, r.body)
		}
		created := c.withToken(secret).post("/api/v2.0/results/batch", []any{p, p}).list(t)
		if len(created) != 2 || created[0]["origin"] != "ci_a" || created[1]["origin"] != "ci_a" {
			t.Errorf("batch with ci_a's token stored %v", created)
		}
	})
}
