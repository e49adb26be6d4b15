package resultsdb

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

func post(outcome, testcase, item, typ string, extra map[string]any) map[string]any {
	data := map[string]any{"item": item, "type": typ}
	for k, v := range extra {
		data[k] = v
	}
	return map[string]any{"outcome": outcome, "testcase": testcase, "data": data}
}

func TestCreateAndGetResult(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		body := map[string]any{
			"outcome":  " passed ",
			"testcase": map[string]any{"name": "dist.rpmlint", "ref_url": "https://fedoraproject.org/wiki/Taskotron/Tasks/dist.rpmlint"},
			"groups": []any{
				map[string]any{"uuid": "27f94e36-62ec-11e6-83fd-525400d7d6a4", "ref_url": "https://taskotron.fedoraproject.org/execdb/jobs/27f94e36-62ec-11e6-83fd-525400d7d6a4", "description": "rpmlint run"},
			},
			"note":    "0 errors, 30 warnings",
			"ref_url": "https://taskotron.fedoraproject.org/artifacts/all/27f94e36/task_output/koschei.log",
			"data":    map[string]any{"item": "koschei-1.7.2-1.fc24", "type": "koji_build", "arch": []any{"x86_64", "noarch"}, "runs": 3, "ok": true},
			"_auth":   nil,
		}
		created := c.mustPost("/api/v2.0/results", body)
		id := int(created["id"].(float64))
		got := c.get(fmt.Sprintf("/api/v2.0/results/%d", id))
		if got.code != 200 {
			t.Fatalf("GET result: %d %s", got.code, got.body)
		}
		m := got.json(t)
		if !reflect.DeepEqual(m, created) {
			t.Errorf("GET differs from the POST answer:\n%v\n%v", m, created)
		}
		want := map[string]any{
			"outcome": "PASSED", "note": "0 errors, 30 warnings",
			"ref_url": "https://taskotron.fedoraproject.org/artifacts/all/27f94e36/task_output/koschei.log",
			"groups":  []any{"27f94e36-62ec-11e6-83fd-525400d7d6a4"},
			"href":    fmt.Sprintf("%s/api/v2.0/results/%d", c.base, id),
			"data": map[string]any{
				"item": []any{"koschei-1.7.2-1.fc24"}, "type": []any{"koji_build"},
				"arch": []any{"x86_64", "noarch"}, "runs": []any{"3"}, "ok": []any{"True"},
			},
			"testcase": map[string]any{
				"name": "dist.rpmlint", "ref_url": "https://fedoraproject.org/wiki/Taskotron/Tasks/dist.rpmlint",
				"href": c.base + "/api/v2.0/testcases/dist.rpmlint",
			},
		}
		for k, v := range want {
			if !reflect.DeepEqual(m[k], v) {
				t.Errorf("%s = %#v, want %#v", k, m[k], v)
			}
		}
		st, _ := m["submit_time"].(string)
		if len(st) < 19 || strings.ContainsAny(st, "Z+") || st[10] != 'T' {
			t.Errorf("submit_time %q is not a naive isoformat datetime", st)
		}

		g := c.get("/api/v2.0/groups/27f94e36-62ec-11e6-83fd-525400d7d6a4").json(t)
		if g["description"] != "rpmlint run" || g["results_count"] != float64(1) ||
			g["results"] != c.base+"/api/v2.0/results?groups=27f94e36-62ec-11e6-83fd-525400d7d6a4" {
			t.Errorf("group after the post: %v", g)
		}

		r := c.get("/api/v2.0/results/999999")
		if r.code != 404 || r.message(t) != "Result not found" {
			t.Errorf("missing result: %d %s", r.code, r.body)
		}
		r = c.get("/api/v2.0/results/notanumber")
		if r.code != 404 {
			t.Errorf("non-numeric id: %d", r.code)
		}
	})
}

// The reporter posts contract.ResultsDBPost; it must be accepted as is.
func TestContractPost(t *testing.T) {
	eachStore(t, Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}, func(t *testing.T, c *client, _ Store) {
		p := contract.ResultsDBPost{
			Outcome:  contract.Crashed,
			Testcase: contract.TestcaseRef{Name: "dist.python-versions", RefURL: "https://fedoraproject.org/wiki/Taskotron/Tasks/dist.python-versions"},
			Groups:   []contract.GroupRef{{UUID: "0c5c2ba4-1c1a-4b2a-9a0f-4d1f7c1a2b3c", RefURL: "http://execdb/jobs/0c5c2ba4"}},
			Note:     "runner crashed: out of memory",
			RefURL:   "http://artifacts/all/0c5c2ba4/",
			Data:     map[string]any{"item": "xchat-0.5-1.fc20", "type": "koji_build", "arch": "noarch"},
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		m := c.mustPost("/api/v2.0/results", raw)
		if m["outcome"] != "CRASHED" || m["note"] != p.Note {
			t.Errorf("stored %v", m)
		}
	})
}

func TestFilters(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		at := func(body map[string]any, when string) int {
			body["submit_time"] = when
			return int(c.mustPost("/api/v2.0/results", body)["id"].(float64))
		}
		a := at(post("PASSED", "dist.rpmlint", "foo-1.0-1.fc24", "koji_build", map[string]any{"arch": "x86_64"}), "2016-08-15T10:00:00")
		b := at(post("FAILED", "dist.rpmlint", "bar-2.0-1.fc24", "koji_build", map[string]any{"arch": "i386"}), "2016-08-16T10:00:00")
		cc := at(post("INFO", "dist.depcheck", "foo-1.0-1.fc24", "koji_build", map[string]any{"arch": "x86_64"}), "2016-08-17T10:00:00.250000")
		d := at(post("NEEDS_INSPECTION", "dist.abicheck", "FEDORA-2016-abc", "bodhi_update", nil), "2016-08-18T10:00:00")
		body := post("PASSED", "pkg.foo.check", "foo-1.0-1.fc24", "koji_build", nil)
		body["groups"] = []any{"g-1"}
		e := at(body, "2016-08-19T10:00:00")

		cases := []struct {
			query string
			want  []int
		}{
			{"", []int{e, d, cc, b, a}},
			{"?item=foo-1.0-1.fc24", []int{e, cc, a}},
			{"?item=foo-1.0-1.fc24&type=koji_build", []int{e, cc, a}},
			{"?item=foo-1.0-1.fc24,bar-2.0-1.fc24&arch=x86_64", []int{cc, a}},
			{"?item=foo-1.0-1.fc24&item=FEDORA-2016-abc", []int{e, d, cc, a}},
			{"?item:like=*-1.fc24", []int{e, cc, b, a}},
			{"?item:like=FEDORA*,bar*", []int{d, b}},
			{"?type=bodhi_update", []int{d}},
			{"?outcome=failed,info", []int{cc, b}},
			{"?outcome=PASSED", []int{e, a}},
			{"?testcases=dist.rpmlint", []int{b, a}},
			{"?testcases=dist.rpmlint,dist.abicheck", []int{d, b, a}},
			{"?testcases:like=dist.*", []int{d, cc, b, a}},
			{"?testcases=pkg.foo.check&testcases:like=dist.dep*", []int{e, cc}},
			{"?groups=g-1", []int{e}},
			{"?since=2016-08-17", []int{e, d, cc}},
			{"?since=2016-08-16T10:00:00,2016-08-17T10:00:00.250000", []int{cc, b}},
			{"?since=2016-08-16T12:00:00%2B02:00,2016-08-18", []int{cc}},
			{"?_sort=asc:submit_time", []int{a, b, cc, d, e}},
			{"?_sort=desc:submit_time&outcome=PASSED", []int{e, a}},
			{"?_sort=bogus", []int{e, d, cc, b, a}},
			{"?item=nothing", []int{}},
			{"?item=x'%20OR%20'1'='1", []int{}},
			{"?weird%27key=1", []int{}},
			{"?callback=cb&_=123", []int{e, d, cc, b, a}},
		}
		for _, tc := range cases {
			r := c.get("/api/v2.0/results" + tc.query)
			if r.code != 200 {
				t.Errorf("%s: status %d %s", tc.query, r.code, r.body)
				continue
			}
			if got := ids(t, r.list(t)); !equalInts(got, tc.want) {
				t.Errorf("%s: ids %v, want %v", tc.query, got, tc.want)
			}
		}

		r := c.get("/api/v2.0/results?_sort=disable_sorting")
		if got := ids(t, r.list(t)); len(got) != 5 {
			t.Errorf("disable_sorting: %v", got)
		}
		// The group and testcase result lists take the same filters.
		r = c.get("/api/v2.0/testcases/dist.rpmlint/results?outcome=FAILED")
		if got := ids(t, r.list(t)); !equalInts(got, []int{b}) {
			t.Errorf("testcase results: %v", got)
		}
		r = c.get("/api/v2.0/groups/g-1/results?item=foo-1.0-1.fc24")
		if got := ids(t, r.list(t)); !equalInts(got, []int{e}) {
			t.Errorf("group results: %v", got)
		}
	})
}

func TestErrors(t *testing.T) {
	eachStore(t, Options{MaxBodyBytes: 4096}, func(t *testing.T, c *client, _ Store) {
		cases := []struct {
			method, path string
			body         any
			code         int
			message      string
		}{
			{"GET", "/api/v2.0/results?outcome=GREAT", nil, 400, "outcome 'GREAT' not one of ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION')"},
			{"GET", "/api/v2.0/results?since=yesterday", nil, 400, "'since' parameter not in ISO8601 format"},
			{"GET", "/api/v2.0/results?since=2016-01-01,tomorrow", nil, 400, "'since' parameter not in ISO8601 format"},
			{"GET", "/api/v2.0/results?page=x", nil, 400, `Malformed Request: page: want a whole number 0 or more, got "x"`},
			{"GET", "/api/v2.0/results?page=99999999999999999", nil, 400, "Malformed Request: page: at most 1000000000, got 99999999999999999"},
			{"GET", "/api/v2.0/results?limit=-1", nil, 400, `Malformed Request: limit: want a whole number 0 or more, got "-1"`},
			{"GET", "/api/v2.0/results/latest?_distinct_on=scenario", nil, 400, "Please, provide at least one filter beside '_distinct_on'"},
			{"GET", "/api/v2.0/results?item=" + strings.Repeat("x,", 1000) + "x", nil, 400, "Malformed Request: at most 1000 values in all filters together, got 1001"},
			{"GET", "/api/v2.0/groups/nope", nil, 404, "Group not found"},
			{"GET", "/api/v2.0/groups/nope/results", nil, 404, "Group not found: nope"},
			{"GET", "/api/v2.0/testcases/nope", nil, 404, "Testcase not found"},
			{"GET", "/api/v2.0/testcases/nope/results", nil, 404, "Testcase not found"},
			{"GET", "/api/v2.0/nothing/here", nil, 404, "Not found"},
			{"DELETE", "/api/v2.0/results", nil, 405, "The method is not allowed for the requested URL."},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x"`, 400, ""},
			{"POST", "/api/v2.0/results", `[1, 2]`, 400, "Malformed Request: the body must be a JSON object, not a list"},
			{"POST", "/api/v2.0/results", ``, 400, "Malformed Request: the body is empty; send a JSON object"},
			{"POST", "/api/v2.0/results", `{"testcase": "x"}`, 400, "Malformed Request: outcome: missing required parameter in the JSON body"},
			{"POST", "/api/v2.0/results", `{"outcome": 1, "testcase": "x"}`, 400, "Malformed Request: outcome must be a string, not a number"},
			{"POST", "/api/v2.0/results", `{"outcome": "GREAT", "testcase": "x"}`, 400, "outcome must be one of ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION')"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED"}`, 400, "Malformed Request: testcase: missing required parameter in the JSON body"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": ""}`, 400, "testcase name not set"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": {"ref_url": "x"}}`, 400, "testcase.name not set"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": 7}`, 400, "Malformed Request: testcase must be a name or an object with a name, not a number"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "data": {"a:b": 1, "item": "y"}}`, 400, "Colon not allowed in key name: ['a:b']"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "data": []}`, 400, "Malformed Request: data must be an object, not a list"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "groups": "abc"}`, 400, "Malformed Request: groups must be a list, not a string"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "groups": [5]}`, 400, "Malformed Request: groups[0] must be a uuid string or an object, not a number"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "note": {"a": 1}}`, 400, "Malformed Request: note must be a string or null, not an object"},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "submit_time": "last tuesday"}`, 400, `Malformed Request: submit_time: want YYYY-MM-DDTHH:MM:SS.ffffff, got "last tuesday"`},
			{"POST", "/api/v2.0/results", `{"outcome": "PASSED", "testcase": "x", "note": "` + strings.Repeat("x", 5000) + `"}`, 413, "Request body larger than 4096 bytes"},
			{"POST", "/api/v2.0/testcases", `{"ref_url": "x"}`, 400, "Malformed Request: name: missing required parameter in the JSON body"},
			{"POST", "/api/v2.0/groups", `{"uuid": 5}`, 400, "Malformed Request: uuid must be a string or null, not a number"},
		}
		for _, tc := range cases {
			r := c.do(tc.method, tc.path, tc.body)
			if r.code != tc.code {
				t.Errorf("%s %s %v: status %d, want %d (%s)", tc.method, tc.path, tc.body, r.code, tc.code, r.body)
				continue
			}
			msg := r.message(t)
			if tc.message == "" && msg == "" || tc.message != "" && msg != tc.message {
				t.Errorf("%s %s: message %q, want %q", tc.method, tc.path, msg, tc.message)
			}
		}
		// Nothing of the above was stored.
		if got := c.get("/api/v2.0/results").list(t); len(got) != 0 {
			t.Errorf("rejected posts stored %d results", len(got))
		}
	})
}

func TestPagination(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		var all []int
		for i := 0; i < 7; i++ {
			m := c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", fmt.Sprintf("pkg-%d", i), "koji_build", nil))
			all = append([]int{int(m["id"].(float64))}, all...)
		}
		r := c.get("/api/v2.0/results?limit=3").json(t)
		if r["prev"] != nil || r["next"] != c.base+"/api/v2.0/results?limit=3&page=1" {
			t.Errorf("page 0 links: prev %v next %v", r["prev"], r["next"])
		}
		r2 := c.get("/api/v2.0/results?limit=3&page=1&callback=foo&type=koji_build")
		m := r2.json(t)
		if m["prev"] != c.base+"/api/v2.0/results?limit=3&page=0&type=koji_build" ||
			m["next"] != c.base+"/api/v2.0/results?limit=3&page=2&type=koji_build" {
			t.Errorf("page 1 links: prev %v next %v", m["prev"], m["next"])
		}
		if got := ids(t, r2.list(t)); !equalInts(got, all[3:6]) {
			t.Errorf("page 1: %v, want %v", got, all[3:6])
		}
		r3 := c.get("/api/v2.0/results?page=2&limit=3")
		m = r3.json(t)
		if m["next"] != nil || m["prev"] != c.base+"/api/v2.0/results?page=1&limit=3" {
			t.Errorf("last page links: prev %v next %v", m["prev"], m["next"])
		}
		if got := ids(t, r3.list(t)); !equalInts(got, all[6:]) {
			t.Errorf("last page: %v, want %v", got, all[6:])
		}
		if got := c.get("/api/v2.0/results").list(t); len(got) != 7 {
			t.Errorf("default limit: %d results", len(got))
		}
		if m := c.get("/api/v2.0/testcases?limit=1").json(t); m["next"] != nil {
			t.Errorf("one testcase, limit 1: next %v", m["next"])
		}
	})
}

func TestLatest(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		id := func(outcome, testcase, item string, extra map[string]any, when string) int {
			b := post(outcome, testcase, item, "koji_build", extra)
			b["submit_time"] = when
			return int(c.mustPost("/api/v2.0/results", b)["id"].(float64))
		}
		id("FAILED", "dist.rpmlint", "foo-1", map[string]any{"arch": "x86_64"}, "2020-01-01T00:00:01")
		r2 := id("PASSED", "dist.rpmlint", "foo-1", map[string]any{"arch": "x86_64"}, "2020-01-01T00:00:02")
		r3 := id("FAILED", "dist.rpmlint", "foo-1", map[string]any{"arch": "i386"}, "2020-01-01T00:00:03")
		r4 := id("INFO", "dist.depcheck", "foo-1", map[string]any{"arch": "x86_64"}, "2020-01-01T00:00:04")
		r5 := id("PASSED", "dist.rpmlint", "bar-1", nil, "2020-01-01T00:00:05")
		r6 := id("FAILED", "dist.rpmlint", "foo-1", map[string]any{"arch": "x86_64", "scenario": "s1"}, "2019-01-01T00:00:00")

		cases := []struct {
			query string
			want  []int
		}{
			{"?item=foo-1", []int{r4, r3}},
			{"?item=foo-1&_distinct_on=arch", []int{r4, r3, r2}},
			{"?item=foo-1&_distinct_on=arch,scenario", []int{r4, r3, r2, r6}},
			{"?item=foo-1&testcases=dist.rpmlint&_distinct_on=arch", []int{r3, r2}},
			{"?testcases:like=dist.*", []int{r5, r4}},
			{"", []int{r5, r4}},
			{"?since=2019-06-01,2020-01-01T00:00:03", []int{r3}},
			{"?testcases=dist.depcheck,dist.none", []int{r4}},
			{"?outcome=FAILED&item=foo-1", []int{r4, r3}},
			{"?item=foo-1&since=2019-06-01,2020-01-01T00:00:02", []int{r2}},
			{"?item=foo-1&_sort=asc:submit_time", []int{r3, r4}},
		}
		for _, tc := range cases {
			r := c.get("/api/v2.0/results/latest" + tc.query)
			if r.code != 200 {
				t.Errorf("%s: %d %s", tc.query, r.code, r.body)
				continue
			}
			m := r.json(t)
			if _, has := m["next"]; has {
				t.Errorf("%s: latest is not paginated, got next", tc.query)
			}
			if got := ids(t, r.list(t)); !equalInts(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
			}
		}
	})
}

// Results that share their testcase's newest submit_time all count as
// the latest, as ResultsDB's join on the max submit_time has it; with
// _distinct_on one of them stands for its group.
func TestLatestReturnsTies(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		id := func(outcome, arch, when string) int {
			b := post(outcome, "dist.rpmlint", "foo-1", "koji_build", map[string]any{"arch": arch})
			b["submit_time"] = when
			return int(c.mustPost("/api/v2.0/results", b)["id"].(float64))
		}
		id("FAILED", "x86_64", "2020-01-01T00:00:01")
		a := id("PASSED", "x86_64", "2020-01-01T00:00:02")
		b := id("FAILED", "i386", "2020-01-01T00:00:02")
		for query, want := range map[string][]int{
			"":                              {b, a},
			"?testcases=dist.rpmlint":       {b, a},
			"?item=foo-1":                   {b, a},
			"?item=foo-1&_distinct_on=arch": {b, a},
			"?item=foo-1&arch=x86_64":       {a},
		} {
			r := c.get("/api/v2.0/results/latest" + query)
			if r.code != 200 {
				t.Fatalf("%s: %d %s", query, r.code, r.body)
			}
			if got := ids(t, r.list(t)); !equalInts(got, want) {
				t.Errorf("latest%s: %v, want %v", query, got, want)
			}
		}
	})
}

func TestGroupsAndTestcases(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		g := c.mustPost("/api/v2.0/groups", map[string]any{"uuid": "u-1", "description": "first", "ref_url": "http://execdb/jobs/u-1"})
		if g["uuid"] != "u-1" || g["description"] != "first" || g["results_count"] != float64(0) || g["href"] != c.base+"/api/v2.0/groups/u-1" {
			t.Errorf("created group %v", g)
		}
		// An existing uuid is updated, not duplicated; empty values keep the old ones.
		g = c.mustPost("/api/v2.0/groups", map[string]any{"uuid": "u-1", "description": "renamed", "ref_url": ""})
		if g["description"] != "renamed" || g["ref_url"] != "http://execdb/jobs/u-1" {
			t.Errorf("updated group %v", g)
		}
		gen := c.mustPost("/api/v2.0/groups", map[string]any{"description": "second run"})
		if u, _ := gen["uuid"].(string); len(u) != 36 {
			t.Errorf("generated uuid %q", gen["uuid"])
		}
		c.mustPost("/api/v2.0/groups", map[string]any{"uuid": "u-3", "description": "third"})
		list := c.get("/api/v2.0/groups").list(t)
		if len(list) != 3 || list[0]["uuid"] != "u-3" || list[2]["uuid"] != "u-1" {
			t.Errorf("groups not newest first: %v", list)
		}
		for q, want := range map[string]int{"?uuid=u-1,u-3": 2, "?description=third": 1, "?description:like=*run*": 1, "?description:like=zzz": 0} {
			if got := c.get("/api/v2.0/groups" + q).list(t); len(got) != want {
				t.Errorf("groups%s: %d, want %d", q, len(got), want)
			}
		}

		tc := c.mustPost("/api/v2.0/testcases", map[string]any{"name": "dist.rpmlint", "ref_url": "http://wiki/rpmlint"})
		if tc["name"] != "dist.rpmlint" || tc["ref_url"] != "http://wiki/rpmlint" || tc["href"] != c.base+"/api/v2.0/testcases/dist.rpmlint" {
			t.Errorf("created testcase %v", tc)
		}
		c.mustPost("/api/v2.0/testcases", map[string]any{"name": "dist.abicheck"})
		c.mustPost("/api/v2.0/testcases", map[string]any{"name": "dist.rpmlint", "ref_url": "http://wiki/rpmlint2"})
		// A result naming a new testcase creates it; a plain name keeps ref_url.
		c.mustPost("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": "dist.rpmlint", "groups": []any{"u-1", map[string]any{"uuid": "u-1"}}})
		c.mustPost("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": "pkg.new"})
		names := []string{}
		for _, m := range c.get("/api/v2.0/testcases").list(t) {
			names = append(names, m["name"].(string))
		}
		if !reflect.DeepEqual(names, []string{"dist.abicheck", "dist.rpmlint", "pkg.new"}) {
			t.Errorf("testcases %v", names)
		}
		if got := c.get("/api/v2.0/testcases/dist.rpmlint").json(t); got["ref_url"] != "http://wiki/rpmlint2" {
			t.Errorf("testcase after updates: %v", got)
		}
		if got := c.get("/api/v2.0/testcases?name:like=dist.*").list(t); len(got) != 2 {
			t.Errorf("name:like: %d", len(got))
		}
		if got := c.get("/api/v2.0/testcases?name=pkg.new,dist.abicheck").list(t); len(got) != 2 {
			t.Errorf("name list: %d", len(got))
		}
		if got := c.get("/api/v2.0/groups/u-1").json(t); got["results_count"] != float64(1) {
			t.Errorf("a group named twice in one result counts it once: %v", got)
		}
	})
}

func TestLandingAndHealth(t *testing.T) {
	eachStore(t, Options{AdditionalOutcomes: []string{"crashed", "ABORTED", "PASSED"}}, func(t *testing.T, c *client, _ Store) {
		for _, path := range []string{"/api/v2.0", "/api/v2.0/"} {
			r := c.get(path)
			if r.code != 300 {
				t.Fatalf("%s: status %d, want 300", path, r.code)
			}
			m := r.json(t)
			if !reflect.DeepEqual(m["outcomes"], []any{"PASSED", "INFO", "FAILED", "NEEDS_INSPECTION", "CRASHED", "ABORTED"}) {
				t.Errorf("outcomes %v", m["outcomes"])
			}
			if m["results"] != c.base+"/api/v2.0/results" || m["groups"] != c.base+"/api/v2.0/groups" || m["testcases"] != c.base+"/api/v2.0/testcases" {
				t.Errorf("landing links %v", m)
			}
		}
		for _, path := range []string{"/api/v2.0/healthcheck", "/healthcheck"} {
			r := c.get(path)
			if r.code != 200 || r.message(t) != "Health check OK" {
				t.Errorf("%s: %d %s", path, r.code, r.body)
			}
		}
		c.mustPost("/api/v2.0/results", map[string]any{"outcome": "crashed", "testcase": "x"})
		if r := c.get("/api/v2.0/results?outcome=CRASHED,aborted"); len(r.list(t)) != 1 {
			t.Errorf("additional outcome filter: %s", r.body)
		}
	})
}

func TestTokenAuth(t *testing.T) {
	eachStore(t, Options{Token: "s3cret"}, func(t *testing.T, c *client, _ Store) {
		body := post("PASSED", "dist.rpmlint", "foo-1", "koji_build", nil)
		r := c.post("/api/v2.0/results", body)
		if r.code != http.StatusUnauthorized || !strings.Contains(r.message(t), "Bearer") || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("no token: %d %s", r.code, r.body)
		}
		c.token = "wrong"
		if r := c.post("/api/v2.0/testcases", map[string]any{"name": "x"}); r.code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d %s", r.code, r.body)
		}
		if r := c.post("/api/v2.0/groups", map[string]any{"uuid": "x"}); r.code != http.StatusUnauthorized {
			t.Errorf("wrong token on groups: %d %s", r.code, r.body)
		}
		if r := c.get("/api/v2.0/results"); r.code != 200 {
			t.Errorf("reads must stay public: %d", r.code)
		}
		c.token = "s3cret"
		c.mustPost("/api/v2.0/results", body)
		c.token = ""
		if got := c.get("/api/v2.0/results").list(t); len(got) != 1 {
			t.Errorf("%d results, want 1", len(got))
		}
	})
}

func TestPrevNext(t *testing.T) {
	cases := []struct {
		url        string
		more       bool
		prev, next string
	}{
		{"http://h/api/v2.0/results", true, "", "http://h/api/v2.0/results?page=1"},
		{"http://h/api/v2.0/results?item=a", false, "", ""},
		{"http://h/api/v2.0/results?page=3&item=a", true, "http://h/api/v2.0/results?page=2&item=a", "http://h/api/v2.0/results?page=4&item=a"},
		{"http://h/api/v2.0/results?callback=x&page=1", false, "http://h/api/v2.0/results?page=0", ""},
		{"http://h/api/v2.0/results?item=a&callback=x&limit=2", true, "", "http://h/api/v2.0/results?item=a&limit=2&page=1"},
	}
	for _, tc := range cases {
		prev, next := prevNext(tc.url, tc.more)
		if deref(prev) != tc.prev || deref(next) != tc.next {
			t.Errorf("%s: prev %q next %q, want %q %q", tc.url, deref(prev), deref(next), tc.prev, tc.next)
		}
	}
}

func TestParseSince(t *testing.T) {
	cases := []struct {
		in         string
		start, end string
		bad        bool
	}{
		{in: "2016-08-15", start: "2016-08-15T00:00:00"},
		{in: "2016-08-15T13:29:06", start: "2016-08-15T13:29:06"},
		{in: "2016-08-15T13:29:06.5Z", start: "2016-08-15T13:29:06.500000"},
		{in: "2016-08-15T13:29:06+02:00", start: "2016-08-15T13:29:06"},
		{in: "20160815T1329", start: "2016-08-15T13:29:00"},
		{in: "2016-08-15,2016-08-16T01:02:03", start: "2016-08-15T00:00:00", end: "2016-08-16T01:02:03"},
		{in: "2016-02-30", bad: true},
		{in: "2016-13-01", bad: true},
		{in: "yesterday", bad: true},
		{in: "", bad: true},
		{in: "2016-08-15,", bad: true},
	}
	for _, tc := range cases {
		s, e, err := parseSince(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		end := ""
		if !e.IsZero() {
			end = isoformat(e)
		}
		if isoformat(s) != tc.start || end != tc.end {
			t.Errorf("%q: %s %s, want %s %s", tc.in, isoformat(s), end, tc.start, tc.end)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, dsn := range []string{"mysql://x", "sqlite:", "/tmp/x.db"} {
		if _, err := Open(t.Context(), dsn); err == nil {
			t.Errorf("%q: opened", dsn)
		}
	}
	_, err := Open(t.Context(), "postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "pw@") {
		t.Errorf("unreachable postgres: %v (the password must not show)", err)
	}
}

// A database that cannot answer makes the health check fail with 503, as
// a load balancer expects, while the landing page still answers.
func TestHealthcheckDatabaseDown(t *testing.T) {
	store, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "r.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(store, Options{}))
	defer srv.Close()
	store.Close()
	for _, path := range []string{"/healthcheck", "/api/v2.0/healthcheck"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 503 || err != nil || body["message"] != "Unable to communicate with database" {
			t.Errorf("%s with the database closed: %d %v %v, want 503 and a message", path, resp.StatusCode, body, err)
		}
	}
}

// _distinct_on as ResultsDB joins it: a result with several values of the
// key is a candidate under each of them, so an older result is never shown
// as the latest for a value a newer one also has; a result without the key
// counts under "no value". Whatever _sort says, newest first.
func TestLatestDistinctOnMultiValued(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		id := func(extra map[string]any, when string) int {
			b := post("PASSED", "dist.rpmlint", "foo-1", "koji_build", extra)
			b["submit_time"] = when
			return int(c.mustPost("/api/v2.0/results", b)["id"].(float64))
		}
		id(map[string]any{"arch": "noarch"}, "2020-01-01T00:00:01")
		id(map[string]any{"arch": "x86_64"}, "2020-01-01T00:00:02")
		both := id(map[string]any{"arch": []any{"noarch", "x86_64"}}, "2020-01-01T00:00:03")
		i386 := id(map[string]any{"arch": "i386"}, "2020-01-01T00:00:00")
		none := id(nil, "2019-01-01T00:00:00")
		for _, q := range []string{"?item=foo-1&_distinct_on=arch", "?item=foo-1&_distinct_on=arch&_sort=asc:submit_time"} {
			r := c.get("/api/v2.0/results/latest" + q)
			if got, want := ids(t, r.list(t)), []int{both, i386, none}; !equalInts(got, want) {
				t.Errorf("%s: %v, want %v", q, got, want)
			}
		}
	})
}
