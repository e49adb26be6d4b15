package resultsdb

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestQAPages checks the pages QA reads, as HTML: the item page, the
// package page, regressions, search, and the group page's links.
func TestQAPages(t *testing.T) {
	store := openTestStore(t, "sqlite")
	c := startServer(t, store, Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}})
	c.t = t
	id := seedHistory(t, c)
	group := seedPages(t, c)

	page := func(path string, code int, want ...string) string {
		t.Helper()
		r := c.get(path)
		if r.code != code {
			t.Fatalf("%s: status %d, want %d\n%s", path, r.code, code, r.body)
		}
		body := r.text()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q", path, w)
			}
		}
		return body
	}
	absent := func(path, body string, unwanted ...string) {
		t.Helper()
		for _, u := range unwanted {
			if strings.Contains(body, u) {
				t.Errorf("%s: page holds %q", path, u)
			}
		}
	}
	inOrder := func(path, body string, parts ...string) {
		t.Helper()
		at := -1
		for _, p := range parts {
			i := strings.Index(body[at+1:], p)
			if i < 0 {
				t.Errorf("%s: %q missing or out of order in %q", path, p, parts)
				return
			}
			at += i + 1
		}
	}
	folder := func(label string) string {
		return fmt.Sprintf("http://127.0.0.1/artifacts/00000000-0000-4000-8000-%012d/", id[label])
	}
	legend := []string{"What the outcomes mean, and what to do", "Read the log, fix the package and build again",
		"It says nothing about the package and is never a regression", "Report it to the task's maintainers"}

	// The item page: a verdict, one row per testcase and arch, coloured,
	// the item only in the title, logs as files, the regression marked.
	item := "/results/latest?item=foo-1:0.9-1.fc40&type=koji_build&_distinct_on=arch"
	body := page(item, 200, append(legend,
		"<h1>foo-1:0.9-1.fc40</h1>",
		`class="verdict verdict-FAILED"`, "Not OK: a check failed", "2 FAILED · 1 CRASHED", "1 regression since the previous build",
		`<a class="package" href="/packages/foo">foo</a>`,
		`<tr class="row-FAILED">`, `<tr class="row-CRASHED">`,
		`regression: was PASSED on <a href="/results/latest?item=foo-1.1-1.fc40&amp;type=koji_build&amp;_distinct_on=arch">foo-1.1-1.fc40</a>`,
		"infrastructure problem, not the package's</b>",
		`class="log" href="`+folder("e1")+`taskotron/taskotron.log"`,
		`class="artifacts" href="`+folder("e1")+`"`,
	)...)
	if n := strings.Count(body, "regression: was"); n != 1 {
		t.Errorf("%s: %d regression marks, want 1", item, n)
	}
	absent(item, body, `<td class="item">`, `class="log" href="`+folder("e1")+`"`)
	inOrder(item, body, ">dist.depcheck</a>", ">dist.rpmlint</a></td>\n<td class=\"arch\">i386", ">dist.rpmlint</a></td>\n<td class=\"arch\">x86_64")

	// A result that named its artifact links to that file.
	xchat := "/results/latest?item=xchat-0.5-1.fc20&type=koji_build&_distinct_on=arch"
	page(xchat, 200, `class="log" href="http://artifacts/all/`+group+`/task_output/dist.rpmlint.log"`,
		`class="artifacts" href="http://artifacts/all/`+group+`/"`, "Not OK: a check failed")
	// The first build has nothing to regress from; an update is no build.
	body = page("/results/latest?item=foo-1.0~rc1-1.fc40&type=koji_build&_distinct_on=arch", 200, "Not OK")
	absent("first build", body, "regression: was", "regression since")
	body = page("/results/latest?item=FEDORA-2024-1&type=bodhi_update&_distinct_on=arch", 200, "Not OK")
	absent("update", body, "regression: was", `class="package"`)
	page("/results/latest?item=bar-2-1.fc40&type=koji_build&_distinct_on=arch", 200, "OK: every check passed", `class="verdict verdict-PASSED"`)
	page("/results/latest?item=nothing-1-1&type=koji_build&_distinct_on=arch", 200, "No results yet")
	// Only infrastructure failures: incomplete, not bad.
	page("/results/latest?item=other-1-1.fc20&type=koji_build&_distinct_on=arch", 200, `class="verdict verdict-ABORTED"`,
		"Incomplete: 1 check did not run through, for reasons of the infrastructure", "1 CRASHED")
	page(fmt.Sprintf("/results/%d", id["e1i386"]), 200, "regression: was PASSED on", `class="log" href="`+folder("e1i386")+`taskotron/taskotron.log"`)
	page(fmt.Sprintf("/results/%d", id["e1dep"]), 200, "infrastructure problem, not the package's</b>depcheck@e37ac0f7e7a6/runtask.yml")

	// The package page: builds newest first in rpm order, epoch and tilde included.
	body = page("/packages/foo", 200, append(legend, "<h1>Package foo</h1>", "<th>dist.<wbr>rpmlint<small>i386</small></th>")...)
	inOrder("/packages/foo", body, ">foo-1:0.9-1.fc40</a>", ">foo-1.1-1.fc40</a>", ">foo-1.0-1.fc40</a>", ">foo-1.0~rc1-1.fc40</a>")
	if n := strings.Count(body, `<span class="regression" title="was PASSED on`); n != 2 {
		t.Errorf("/packages/foo: %d regression marks, want 2", n)
	}
	absent("/packages/foo", body, "foo-devel")
	page("/packages/foo-devel", 200, ">foo-devel-2-1.fc40</a>")
	page("/packages/nope", 404, "No koji_build results for a package named nope.")

	// The regressions page.
	body = page("/regressions", 200, append(legend, `API: <a href="/api/v2.0/regressions">`, `class="log-previous" href="`+folder("1.1i386")+`taskotron/taskotron.log"`)...)
	inOrder("/regressions", body, ">foo-1:0.9-1.fc40</a>", ">foo-1.1-1.fc40</a>", ">foo-1.1-1.fc40</a>", ">foo-1.0-1.fc40</a>")
	body = page("/regressions?item=foo-1.1-1.fc40", 200, `name="item" value="foo-1.1-1.fc40"`, "2 errors")
	absent("/regressions?item=…", body, ">foo-1:0.9-1.fc40</a>")
	page("/regressions?testcases=dist.depcheck", 200, "No regressions.")
	page("/regressions?limit=1", 200, `rel="next" href="/regressions?limit=1&amp;page=1"`)
	page("/regressions?arch=x86_64", 400, "unknown parameter &#39;arch&#39;")

	// Search, from the box in every page's header.
	noRedir := noRedirect(c)
	for q, want := range map[string]string{
		"foo-1.1-1.fc40": "/results/latest?item=foo-1.1-1.fc40&type=koji_build&_distinct_on=arch",
		"FEDORA-2024-1":  "/results/latest?item=FEDORA-2024-1&type=bodhi_update&_distinct_on=arch",
		"foo":            "/packages/foo",
	} {
		resp, err := noRedir.Get(c.base + "/search?q=" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("search %q: %d to %q, want %s", q, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	page("/search?q=0.5", 200, `value="0.5"`, `href="/results/latest?item=xchat-0.5-1.fc20&amp;type=koji_build&amp;_distinct_on=arch">xchat-0.5-1.fc20</a>`,
		`<a href="/packages/xchat">xchat</a>`)
	page("/search?q=fc40", 200, `<a href="/packages/bar">bar</a>`, `<a href="/packages/foo-devel">foo-devel</a>`, "foo-1:0.9-1.fc40</a>")
	page("/search?q=zzz", 200, "No item contains “zzz”.")
	page("/search", 200, "Type an item")
	for _, p := range []string{"/results", "/groups", "/testcases", "/regressions", "/packages/foo", item, "/nothing"} {
		r := c.get(p)
		for _, w := range []string{`<form class="search" method="get" action="/search"`, `<a href="/queue">Queue</a>`, `<a href="/executions">Executions</a>`, `<a href="/boards">Boards</a>`} {
			if !strings.Contains(r.text(), w) {
				t.Errorf("%s: header lacks %s", p, w)
			}
		}
	}

	// The group page: one log, one artifacts folder, the execution page.
	g := fmt.Sprintf("00000000-0000-4000-8000-%012d", id["e1"])
	body = page("/groups/"+g, 200, `<a class="execution" href="/executions/`+g+`">`,
		`<a class="log" href="`+folder("e1")+`taskotron/taskotron.log">`, `<a class="artifacts" href="`+folder("e1")+`">`)
	if n := strings.Count(body, `href="`+folder("e1")+`"`); n != 1 {
		t.Errorf("group page links the artifacts folder %d times, want once:\n%s", n, body)
	}
	absent("group page", body, "<dt>ref_url</dt>")
	// The ExecDB link of this host's execution is that page again.
	same := "5b7b3a4e-0000-4000-8000-0000000005a3"
	b := post("PASSED", "dist.rpmlint", "baz-1-1.fc40", "koji_build", nil)
	b["groups"] = []any{map[string]any{"uuid": same, "ref_url": c.base + "/jobs/" + same}}
	c.mustPost("/api/v2.0/results", b)
	body = page("/groups/"+same, 200, `<a class="execution" href="/executions/`+same+`">`)
	absent("group page", body, "<dt>ref_url</dt>", "/jobs/")
	// A ref_url that is none of those (another host's ExecDB) is still shown.
	page("/groups/"+group, 200, `<dt>ref_url</dt><dd><a href="http://execdb/jobs/`+group+`">`)
}
