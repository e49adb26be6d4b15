package resultsdb

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// seedHistory stores builds of foo whose order only rpm knows (a '~'
// pre-release, an epoch that makes 0.9 the newest), a foo-devel that
// "foo-" also starts, a bar with a rerun, and Bodhi updates. It returns
// the ids by label.
func seedHistory(t *testing.T, c *client) map[string]int {
	t.Helper()
	ids := map[string]int{}
	n := 0
	add := func(label, outcome, testcase, item, typ, arch, note string) {
		n++
		extra := map[string]any{}
		if arch != "" {
			extra["arch"] = arch
		}
		b := post(outcome, testcase, item, typ, extra)
		b["submit_time"] = fmt.Sprintf("2024-05-01T10:%02d:00", n)
		b["note"] = note
		group := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
		// As the reporter posts them without an ExecDB URL: the group and
		// a result whose task named no artifact link to the folder.
		folder := "http://127.0.0.1/artifacts/" + group + "/"
		b["groups"] = []any{map[string]any{"uuid": group, "description": testcase + " on " + item, "ref_url": folder}}
		b["ref_url"] = folder
		ids[label] = int(c.mustPost("/api/v2.0/results", b)["id"].(float64))
	}
	add("rc1", "FAILED", "dist.rpmlint", "foo-1.0~rc1-1.fc40", "koji_build", "x86_64", "3 errors")
	add("1.0", "PASSED", "dist.rpmlint", "foo-1.0-1.fc40", "koji_build", "x86_64", "0 errors")
	add("1.0dep", "PASSED", "dist.depcheck", "foo-1.0-1.fc40", "koji_build", "x86_64", "")
	add("1.1", "FAILED", "dist.rpmlint", "foo-1.1-1.fc40", "koji_build", "x86_64", "2 errors")
	add("1.1i386", "PASSED", "dist.rpmlint", "foo-1.1-1.fc40", "koji_build", "i386", "")
	add("1.1dep", "CRASHED", "dist.depcheck", "foo-1.1-1.fc40", "koji_build", "x86_64", "koji: connection refused")
	add("e1i386", "FAILED", "dist.rpmlint", "foo-1:0.9-1.fc40", "koji_build", "i386", "1 error")
	add("e1", "FAILED", "dist.rpmlint", "foo-1:0.9-1.fc40", "koji_build", "x86_64",
		"4 errors, 12 warnings; foo.x86_64: E: explicit-lib-dependency libfoo; foo.x86_64: E: non-standard-executable-perm /usr/bin/foo 0775; "+
			"foo.x86_64: E: zero-length /usr/share/doc/foo/README; foo.x86_64: E: invalid-license Foo-1.0; foo.x86_64: W: no-manual-page-for-binary foo; "+
			"foo.x86_64: W: spelling-error %description -l en_US recieve -> receive; foo-debuginfo.x86_64: W: only-non-binary-in-usr-lib")
	add("devel", "FAILED", "dist.rpmlint", "foo-devel-2-1.fc40", "koji_build", "x86_64", "")
	add("bar1", "PASSED", "dist.rpmlint", "bar-1-1.fc40", "koji_build", "", "")
	add("bar2", "FAILED", "dist.rpmlint", "bar-2-1.fc40", "koji_build", "", "flaky mirror")
	add("bar2rerun", "PASSED", "dist.rpmlint", "bar-2-1.fc40", "koji_build", "", "")
	add("upd0", "PASSED", "dist.rpmlint", "FEDORA-2024-0", "bodhi_update", "", "")
	add("upd1", "FAILED", "dist.rpmlint", "FEDORA-2024-1", "bodhi_update", "", "")
	add("e1dep", "CRASHED", "dist.depcheck", "foo-1:0.9-1.fc40", "koji_build", "x86_64",
		"depcheck@e37ac0f7e7a6/runtask.yml: action 2 (koji): download foo-1:0.9-1.fc40 from https://koji.fedoraproject.org/kojihub: "+
			"Post \"https://koji.fedoraproject.org/kojihub\": dial tcp 38.145.60.20:443: connect: connection refused")
	return ids
}

// regressionIDs reads a /regressions answer as (result, previous) id pairs.
func regressionIDs(t *testing.T, r response) [][2]int {
	t.Helper()
	if r.code != 200 {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var page struct {
		Data []struct {
			Result   struct{ ID int } `json:"result"`
			Previous struct{ ID int } `json:"previous"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	out := [][2]int{}
	for _, d := range page.Data {
		out = append(out, [2]int{d.Result.ID, d.Previous.ID})
	}
	return out
}

func TestRegressionsAPI(t *testing.T) {
	eachStore(t, Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}, func(t *testing.T, c *client, _ Store) {
		id := seedHistory(t, c)
		pair := func(a, b string) [2]int { return [2]int{id[a], id[b]} }
		check := func(path string, want ...[2]int) {
			t.Helper()
			got := regressionIDs(t, c.get(path))
			if want == nil {
				want = [][2]int{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: (result, previous) %v, want %v (ids %v)", path, got, want, id)
			}
		}
		// Newest first. 1:0.9 follows 1.1 by its epoch; 1.0 is no
		// regression from 1.0~rc1, which rpm orders before it; 1.1 on i386
		// and foo-devel have no previous result to be worse than; CRASHED
		// is no regression; bar's rerun passed; updates have no versions.
		check("/api/v2.0/regressions", pair("e1i386", "1.1i386"), pair("1.1", "1.0"))
		check("/api/v2.0/regressions?item=foo-1.1-1.fc40", pair("1.1", "1.0"))
		check("/api/v2.0/regressions?item=foo-1.1-1.fc40,foo-1:0.9-1.fc40", pair("e1i386", "1.1i386"), pair("1.1", "1.0"))
		check("/api/v2.0/regressions?item=foo-devel-2-1.fc40")
		check("/api/v2.0/regressions?testcases=dist.depcheck")
		check("/api/v2.0/regressions?testcases=dist.depcheck,dist.rpmlint", pair("e1i386", "1.1i386"), pair("1.1", "1.0"))
		check("/api/v2.0/regressions?since=2024-05-01T10:05:00", pair("e1i386", "1.1i386"))
		check("/api/v2.0/regressions?since=2024-05-01T10:01:00,2024-05-01T10:05:00", pair("1.1", "1.0"))
		// A result asked for by id is judged though it was rerun since.
		check(fmt.Sprintf("/api/v2.0/regressions?result_id=%d,%d,%d,999999", id["bar2"], id["1.0"], id["devel"]), pair("bar2", "bar1"))
		check(fmt.Sprintf("/api/v2.0/regressions?result_id=%d&testcases=dist.depcheck", id["bar2"]))

		// The result and previous objects are what /results/ID gives.
		r := c.get("/api/v2.0/regressions?limit=1")
		var page struct {
			Data []map[string]json.RawMessage `json:"data"`
			Prev *string                      `json:"prev"`
			Next *string                      `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Prev != nil || page.Next == nil || *page.Next != c.base+"/api/v2.0/regressions?limit=1&page=1" {
			t.Fatalf("limit=1: %s", r.body)
		}
		for key, label := range map[string]string{"result": "e1i386", "previous": "1.1i386"} {
			var got, want any
			_ = json.Unmarshal(page.Data[0][key], &got)
			_ = json.Unmarshal(c.get(fmt.Sprintf("/api/v2.0/results/%d", id[label])).body, &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %v\nwant what /results/ID gives: %v", key, got, want)
			}
		}
		m := c.get("/api/v2.0/regressions?limit=1&page=1").json(t)
		if m["prev"] != c.base+"/api/v2.0/regressions?limit=1&page=0" || m["next"] != nil {
			t.Errorf("page 1: prev %v next %v", m["prev"], m["next"])
		}
		check("/api/v2.0/regressions?limit=1&page=1", pair("1.1", "1.0"))
		check("/api/v2.0/regressions?limit=1&page=2")

		for path, want := range map[string]string{
			"/api/v2.0/regressions?result_id=abc":   "result_id: want result ids",
			"/api/v2.0/regressions?outcome=FAILED":  "unknown parameter 'outcome'",
			"/api/v2.0/regressions?since=yesterday": "'since' parameter not in ISO8601 format",
			"/api/v2.0/regressions?limit=-1":        "limit",
		} {
			r := c.get(path)
			if r.code != 400 || !strings.Contains(r.message(t), want) {
				t.Errorf("%s: %d %s, want 400 with %q", path, r.code, r.body, want)
			}
		}
	})
}
