package resultsdb

import (
	"net/http"
	"strings"
	"testing"
)

// seedPages stores a small history for one item: rpmlint failed on
// x86_64 then passed, depcheck failed on i386, and one other item.
func seedPages(t *testing.T, c *client) (group string) {
	t.Helper()
	group = "5b7b3a4e-0000-4000-8000-00000000cafe"
	add := func(outcome, testcase, arch, when, note string) {
		b := post(outcome, testcase, "xchat-0.5-1.fc20", "koji_build", map[string]any{"arch": arch})
		b["submit_time"] = when
		b["note"] = note
		b["groups"] = []any{map[string]any{"uuid": group, "description": "rpmlint on xchat", "ref_url": "http://execdb/jobs/" + group}}
		b["ref_url"] = "http://artifacts/all/" + group + "/task_output/" + testcase + ".log"
		c.mustPost("/api/v2.0/results", b)
	}
	add("FAILED", "dist.rpmlint", "x86_64", "2024-05-01T10:00:00", "5 errors")
	add("PASSED", "dist.rpmlint", "x86_64", "2024-05-01T11:00:00", "0 errors")
	add("FAILED", "dist.depcheck", "i386", "2024-05-01T12:00:00", "<script>alert(1)</script> broken deps")
	add("NEEDS_INSPECTION", "dist.abicheck", "x86_64", "2024-05-01T13:00:00", "abi changed")
	c.mustPost("/api/v2.0/results", post("CRASHED", "dist.rpmlint", "other-1-1.fc20", "koji_build", nil))
	return group
}

func noRedirect(c *client) *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestPages(t *testing.T) {
	store := openTestStore(t, "sqlite")
	c := startServer(t, store, Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}, ArtifactsURL: "https://taskotron.example/artifacts/all"})
	c.t = t
	group := seedPages(t, c)

	page := func(path string, code int, want ...string) string {
		t.Helper()
		r := c.get(path)
		if r.code != code {
			t.Fatalf("%s: status %d, want %d\n%s", path, r.code, code, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: content type %q", path, ct)
		}
		body := string(r.body)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q", path, w)
			}
		}
		return body
	}

	body := page("/results?item=xchat-0.5-1.fc20&type=koji_build", 200,
		`API: <a href="/api/v2.0/results?item=xchat-0.5-1.fc20&amp;type=koji_build">`,
		`<span class="outcome outcome-FAILED">FAILED</span>`,
		`<span class="outcome outcome-NEEDS_INSPECTION">NEEDS_INSPECTION</span>`,
		`name="item" value="xchat-0.5-1.fc20"`,
		`href="/results/latest?item=xchat-0.5-1.fc20&amp;type=koji_build&amp;_distinct_on=arch"`,
		`&lt;script&gt;alert(1)&lt;/script&gt; broken deps`,
	)
	if strings.Contains(body, "<script>alert") {
		t.Error("a note reached the page unescaped")
	}
	if strings.Contains(body, "other-1-1.fc20") {
		t.Error("the item filter let another item through")
	}
	page("/results?outcome=CRASHED", 200, "other-1-1.fc20", "outcome-CRASHED", "<option selected>CRASHED</option>")
	page("/results?outcome=nope", 400, "outcome &#39;NOPE&#39; not one of")

	// Paging links are the API's, without the prefix.
	body = page("/results?limit=2", 200, `href="/results?limit=2&amp;page=1"`)
	if strings.Contains(body, `rel="prev"`) {
		t.Error("page 0 shows a prev link")
	}
	page("/results?limit=2&page=1", 200, `href="/results?limit=2&amp;page=0"`, `href="/results?limit=2&amp;page=2"`)

	// An empty form field is dropped so the URL stays the API query.
	resp, err := noRedirect(c).Get(c.base + "/results?item=&type=koji_build&testcases=&outcome=&since=")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/results?type=koji_build" {
		t.Errorf("empty form fields: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The item page: the latest result per testcase and arch.
	body = page("/results/latest?item=xchat-0.5-1.fc20&type=koji_build&_distinct_on=arch", 200,
		`API: <a href="/api/v2.0/results/latest?item=xchat-0.5-1.fc20&amp;type=koji_build&amp;_distinct_on=arch">`,
		"0 errors", "abi changed", "broken deps", `href="/results?item=xchat-0.5-1.fc20&amp;type=koji_build"`)
	if strings.Contains(body, "5 errors") {
		t.Error("the item page shows a superseded result")
	}
	page("/results/latest?_distinct_on=arch", 400, "Please, provide at least one filter")

	page("/results/1", 200, "5 errors", "outcome-FAILED", `href="/groups/`+group+`"`, "http://artifacts/all/"+group+"/task_output/dist.rpmlint.log", "<td>arch</td><td>x86_64</td>")
	page("/results/999", 404)
	page("/groups/"+group, 200, "rpmlint on xchat",
		`class="artifacts" href="https://taskotron.example/artifacts/all/`+group+`/"`,
		`API: <a href="/api/v2.0/groups/`+group+`/results">`, "<dd>4</dd>")
	page("/groups/nope", 404)
	// Without a configured artifacts URL, the folder in the results' logs.
	plain := startServer(t, store, Options{})
	plain.t = t
	body = plain.get("/groups/" + group).text()
	if want := `class="artifacts" href="http://artifacts/all/` + group + `/"`; !strings.Contains(body, want) {
		t.Errorf("group page without ArtifactsURL lacks %s", want)
	}
	page("/groups", 200, group)
	page("/testcases/dist.rpmlint", 200, "0 errors", "5 errors", "other-1-1.fc20", `API: <a href="/api/v2.0/testcases/dist.rpmlint/results">`)
	page("/testcases/dist.rpmlint?outcome=CRASHED", 200, "other-1-1.fc20")
	// The API's paths work as page paths too.
	page("/testcases/dist.rpmlint/results?outcome=CRASHED", 200, "other-1-1.fc20", `API: <a href="/api/v2.0/testcases/dist.rpmlint/results?outcome=CRASHED">`)
	page("/groups/"+group+"/results?limit=1", 200, "rpmlint on xchat", `rel="next"`)
	page("/testcases/none", 404)
	page("/testcases?name:like=dist.*", 200, "dist.abicheck", "dist.depcheck")
	page("/nothing", 404, "There is no page at /nothing.")

	resp, err = noRedirect(c).Get(c.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/results" {
		t.Errorf("/: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
