package resultsdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// What a client of ResultsDB 2.2 sees, checked against our server. The
// expected bodies are those release-engineering/resultsdb's
// controllers/api_v2.py, parsers/api_v2.py and serializers/api_v2.py
// produce (and its testing/functest_api_v20.py asserts), read from its
// source.

// serveAsIs serves store with opts exactly as given: without a BaseURL,
// links come from the request.
func serveAsIs(t *testing.T, store Store, opts Options) *client {
	t.Helper()
	srv := httptest.NewServer(NewServer(store, opts))
	t.Cleanup(srv.Close)
	return &client{t: t, base: srv.URL}
}

// eachStoreAsIs is eachStore without a BaseURL.
func eachStoreAsIs(t *testing.T, opts Options, fn func(t *testing.T, c *client, store Store, dsn string)) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store, dsn := openTestStoreDSN(t, kind)
			fn(t, serveAsIs(t, store, opts), store, dsn)
		})
	}
}

// raw sends a request with exactly the given body and headers ("Host"
// sets the Host header).
func (c *client) raw(method, path, body string, header map[string]string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
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
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{code: resp.StatusCode, body: b, header: resp.Header}
}

// asLocalhost is how ResultsDB's own tests call it: Host localhost.
var asLocalhost = map[string]string{"Host": "localhost", "Content-Type": "application/json"}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expected JSON %s: %v", s, err)
	}
	return v
}

// The testcase name of ResultsDB's own functional tests.
const fedoraCI = "fedora-ci.koji-build./plans/basic.functional"

// One request sequence, as ResultsDB's functional tests run it, with
// upstream's default configuration (no additional outcomes): every status
// and every body is the one ResultsDB 2.2 answers.
func TestSameAnswersAsResultsDB(t *testing.T) {
	eachStoreAsIs(t, Options{}, func(t *testing.T, c *client, _ Store, _ string) {
		const (
			tcRef  = "http://example.com/fedora-ci.koji-build./plans/basic.functional"
			uuid   = "3ce5f6d7-ce34-489b-ab61-325ce634eab5"
			prefix = "http://localhost/api/v2.0"
		)
		tc := `{"name": "` + fedoraCI + `", "ref_url": "` + tcRef + `", "href": "` + prefix + `/testcases/` + fedoraCI + `"}`
		result := func(id int, when string, groups string) string {
			return fmt.Sprintf(`{"id": %d, "groups": [%s], "testcase": %s, "submit_time": %q, "outcome": "PASSED",
				"note": "Result Note", "ref_url": "http://example.com/testing.result",
				"data": {"item": ["perl-Specio-0.25-1.fc26"], "type": ["koji_build"], "arch": ["x86_64"], "moo": ["boo", "woof"]},
				"href": "%s/results/%d"}`, id, groups, tc, when, prefix, id)
		}
		r1 := result(1, "2022-08-24T06:54:57.123000", `"`+uuid+`"`)
		r2 := result(2, "2022-08-24T06:54:58", "")
		postBody := func(when string, groups string) string {
			return `{"outcome": "passed", "testcase": {"name": "` + fedoraCI + `", "ref_url": "` + tcRef + `"}, "groups": [` + groups + `],
				"note": "Result Note", "ref_url": "http://example.com/testing.result", "submit_time": ` + when + `,
				"data": {"item": "perl-Specio-0.25-1.fc26", "type": "koji_build", "arch": "x86_64", "moo": ["boo", "woof"]}}`
		}
		steps := []struct {
			method, path, body string
			code               int
			want               string
		}{
			{"GET", "/api/v2.0", "", 300, `{"message": "Everything is fine. But choose wisely, for while the true Grail will bring you life, the false Grail will take it from you.",
				"documentation": "http://docs.resultsdb20.apiary.io/", "groups": "` + prefix + `/groups", "results": "` + prefix + `/results",
				"testcases": "` + prefix + `/testcases", "outcomes": ["PASSED", "INFO", "FAILED", "NEEDS_INSPECTION"]}`},
			{"GET", "/api/v2.0/healthcheck", "", 200, `{"message": "Health check OK"}`},
			{"GET", "/api/v2.0/results", "", 200, `{"prev": null, "next": null, "data": []}`},
			{"POST", "/api/v2.0/testcases", `{"name": "` + fedoraCI + `", "ref_url": "` + tcRef + `"}`, 201, tc},
			{"GET", "/api/v2.0/testcases/" + fedoraCI, "", 200, tc},
			{"GET", "/api/v2.0/testcases", "", 200, `{"prev": null, "next": null, "data": [` + tc + `]}`},
			{"POST", "/api/v2.0/groups", `{"uuid": "` + uuid + `", "description": "Testing Group", "ref_url": "http://example.com/testing.group"}`, 201,
				`{"uuid": "` + uuid + `", "description": "Testing Group", "ref_url": "http://example.com/testing.group", "href": "` + prefix + `/groups/` + uuid + `",
				"results_count": 0, "results": "` + prefix + `/results?groups=` + uuid + `"}`},
			{"POST", "/api/v2.0/results", postBody("1661324097123", `"`+uuid+`"`), 201, r1},
			{"GET", "/api/v2.0/results/1", "", 200, r1},
			// ABORTED is not an outcome of ResultsDB's default configuration.
			{"POST", "/api/v2.0/results", `{"outcome": "ABORTED", "testcase": "` + fedoraCI + `"}`, 400,
				`{"message": "outcome must be one of ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION')"}`},
			{"GET", "/api/v2.0/results?outcome=ABORTED", "", 400,
				`{"message": "outcome 'ABORTED' not one of ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION')"}`},
			{"POST", "/api/v2.0/results", postBody(`"1661324098000"`, ""), 201, r2},
			{"GET", "/api/v2.0/results?limit=1", "", 200, `{"prev": null, "next": "` + prefix + `/results?limit=1&page=1", "data": [` + r2 + `]}`},
			{"GET", "/api/v2.0/results?limit=1&page=1", "", 200, `{"prev": "` + prefix + `/results?limit=1&page=0", "next": null, "data": [` + r1 + `]}`},
			{"GET", "/api/v2.0/results?page=-1&limit=1", "", 200, `{"prev": null, "next": "` + prefix + `/results?page=-1&limit=1&page=1", "data": [` + r2 + `]}`},
			{"GET", "/api/v2.0/testcases/" + fedoraCI + "/results", "", 200, `{"prev": null, "next": null, "data": [` + r2 + `, ` + r1 + `]}`},
			{"GET", "/api/v2.0/groups/" + uuid + "/results", "", 200, `{"prev": null, "next": null, "data": [` + r1 + `]}`},
			{"GET", "/api/v2.0/results?groups=" + uuid + "&item=perl-Specio-0.25-1.fc26", "", 200, `{"prev": null, "next": null, "data": [` + r1 + `]}`},
			{"GET", "/api/v2.0/results/latest?item=perl-Specio-0.25-1.fc26", "", 200, `{"data": [` + r2 + `]}`},
			{"GET", "/api/v2.0/results/latest?item=perl-Specio-0.25-1.fc26&_distinct_on=moo", "", 200, `{"data": [` + r2 + `]}`},
			{"GET", "/api/v2.0/results/latest?_distinct_on=scenario", "", 400, `{"message": "Please, provide at least one filter beside '_distinct_on'"}`},
			{"GET", "/api/v2.0/groups/" + uuid, "", 200, `{"uuid": "` + uuid + `", "description": "Testing Group", "ref_url": "http://example.com/testing.group",
				"href": "` + prefix + `/groups/` + uuid + `", "results_count": 1, "results": "` + prefix + `/results?groups=` + uuid + `"}`},
			{"GET", "/api/v2.0/results/99", "", 404, `{"message": "Result not found"}`},
			{"GET", "/api/v2.0/testcases/nope", "", 404, `{"message": "Testcase not found"}`},
			{"GET", "/api/v2.0/testcases/nope/results", "", 404, `{"message": "Testcase not found"}`},
			{"GET", "/api/v2.0/groups/nope", "", 404, `{"message": "Group not found"}`},
			{"GET", "/api/v2.0/groups/nope/results", "", 404, `{"message": "Group not found: nope"}`},
			{"GET", "/api/v2.0/nothing", "", 404, `{"message": "Not found"}`},
		}
		for _, st := range steps {
			r := c.raw(st.method, st.path, st.body, asLocalhost)
			var got any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Errorf("%s %s: %d, not JSON: %s", st.method, st.path, r.code, r.body)
				continue
			}
			if want := jsonValue(t, st.want); r.code != st.code || !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s:\n got %d %s\nwant %d %s", st.method, st.path, r.code, r.body, st.code, st.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: Content-Type %q", st.method, st.path, ct)
			}
		}
	})
}

// Fedora CI's testcase names hold '/': they route, in the API and on the
// pages, and links show them with their slashes, as ResultsDB's
// <path:testcase_name> routes and url_for do.
func TestTestcaseNamesWithSlashes(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		created := c.mustPost("/api/v2.0/results", post("PASSED", fedoraCI, "foo-1-1.fc40", "koji_build", nil))
		tc := created["testcase"].(map[string]any)
		if want := c.base + "/api/v2.0/testcases/" + fedoraCI; tc["href"] != want {
			t.Errorf("testcase href %v, want %s", tc["href"], want)
		}
		for _, path := range []string{fedoraCI, strings.ReplaceAll(fedoraCI, "/", "%2F")} {
			r := c.get("/api/v2.0/testcases/" + path)
			if r.code != 200 || r.json(t)["name"] != fedoraCI {
				t.Errorf("GET testcases/%s: %d %s", path, r.code, r.body)
			}
			r = c.get("/api/v2.0/testcases/" + path + "/results?type=koji_build")
			if r.code != 200 || len(r.list(t)) != 1 || r.list(t)[0]["id"] != created["id"] {
				t.Errorf("GET testcases/%s/results: %d %s", path, r.code, r.body)
			}
			if p := c.get("/testcases/" + path); p.code != 200 || !strings.Contains(p.text(), "basic.functional") {
				t.Errorf("page testcases/%s: %d", path, p.code)
			}
		}
		// A name made only of "results" is a name; a missing name is not
		// found either way.
		c.mustPost("/api/v2.0/testcases", map[string]any{"name": "results"})
		if r := c.get("/api/v2.0/testcases/results"); r.code != 200 || r.json(t)["name"] != "results" {
			t.Errorf("testcase named results: %d %s", r.code, r.body)
		}
		for path, msg := range map[string]string{
			"/api/v2.0/testcases/fedora-ci.koji-build./plans/none":         "Testcase not found",
			"/api/v2.0/testcases/fedora-ci.koji-build./plans/none/results": "Testcase not found",
			"/api/v2.0/testcases/": "Not found",
		} {
			if r := c.get(path); r.code != 404 || r.message(t) != msg {
				t.Errorf("%s: %d %s, want 404 %q", path, r.code, r.body, msg)
			}
		}
		// Other characters are quoted as Werkzeug quotes them.
		odd := c.mustPost("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": "a b!(x)*é?#%", "groups": []any{"g 1/+&"}})
		if got, want := odd["testcase"].(map[string]any)["href"], c.base+"/api/v2.0/testcases/a%20b!(x)*%C3%A9%3F%23%25"; got != want {
			t.Errorf("href %v, want %s", got, want)
		}
		g := c.get("/api/v2.0/groups/g%201%2F+&").json(t)
		if g["href"] != c.base+"/api/v2.0/groups/g%201/+&" || g["results"] != c.base+"/api/v2.0/results?groups=g+1/%2B%26" {
			t.Errorf("group links %v %v", g["href"], g["results"])
		}
		if r := c.get("/api/v2.0/testcases/a%20b!(x)*%C3%A9%3F%23%25"); r.code != 200 {
			t.Errorf("the quoted href does not lead back: %d %s", r.code, r.body)
		}
	})
}

// Without a base URL, links are made from the URL the client asked for:
// Host, or a proxy's X-Forwarded-Host and X-Forwarded-Scheme (what
// ResultsDB's ReverseProxied reads) or X-Forwarded-Proto; a default port
// is left out, as Werkzeug does. A configured base URL wins over all.
func TestLinksFollowTheRequest(t *testing.T) {
	store := openTestStore(t, "sqlite")
	c := serveAsIs(t, store, Options{})
	c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "foo-1", "koji_build", nil))
	c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "foo-2", "koji_build", nil))
	cases := []struct {
		header map[string]string
		base   string
	}{
		{nil, c.base},
		{map[string]string{"Host": "ResultsDB.example.org:80"}, "http://resultsdb.example.org"},
		{map[string]string{"Host": "resultsdb.example.org:443", "X-Forwarded-Scheme": "https"}, "https://resultsdb.example.org"},
		{map[string]string{"Host": "10.0.0.5:5001", "X-Forwarded-Host": "resultsdb.fedoraproject.org", "X-Forwarded-Proto": "https"}, "https://resultsdb.fedoraproject.org"},
		{map[string]string{"X-Forwarded-Host": "a.example.org:8443, proxy.internal", "X-Forwarded-Proto": "https,http"}, "https://a.example.org:8443"},
		{map[string]string{"X-Forwarded-Host": "[2001:db8::1]:8080"}, "http://[2001:db8::1]:8080"},
		// What no host or scheme can be is ignored.
		{map[string]string{"Host": "h.example.org", "X-Forwarded-Host": "evil.example.org/path?x", "X-Forwarded-Proto": "javascript"}, "http://h.example.org"},
		{map[string]string{"Host": "h.example.org", "X-Forwarded-Host": "2001:db8::1"}, "http://h.example.org"},
		{map[string]string{"Host": "h.example.org", "X-Forwarded-Host": "a.example.org:https"}, "http://h.example.org"},
	}
	for _, tc := range cases {
		r := c.raw("GET", "/api/v2.0/results?limit=1&item:like=foo*", "", tc.header)
		m := r.json(t)
		list := r.list(t)
		if len(list) != 1 || list[0]["href"] != tc.base+"/api/v2.0/results/2" ||
			list[0]["testcase"].(map[string]any)["href"] != tc.base+"/api/v2.0/testcases/dist.rpmlint" {
			t.Errorf("%v: result links %v", tc.header, list)
		}
		if m["next"] != tc.base+"/api/v2.0/results?limit=1&item:like=foo*&page=1" {
			t.Errorf("%v: next %v", tc.header, m["next"])
		}
		if got := c.raw("GET", "/api/v2.0/", "", tc.header).json(t)["results"]; got != tc.base+"/api/v2.0/results" {
			t.Errorf("%v: landing results %v", tc.header, got)
		}
	}
	// next and prev are the request URL as Werkzeug shows it: what a client
	// library quoted comes back readable, what must stay quoted stays.
	r := c.get("/api/v2.0/results?item%3Alike=foo%2A&_=%C3%A9%20%26%2B%FF&limit=1").json(t)
	if want := c.base + "/api/v2.0/results?item:like=foo*&_=é%20%26%2B%FF&limit=1&page=1"; r["next"] != want {
		t.Errorf("next %v, want %s", r["next"], want)
	}

	fixed := serveAsIs(t, store, Options{BaseURL: "https://resultsdb.example.org/prefix/"})
	r = fixed.raw("GET", "/api/v2.0/results?limit=1", "", map[string]string{"Host": "other", "X-Forwarded-Host": "proxy.example.org"}).json(t)
	if r["next"] != "https://resultsdb.example.org/prefix/api/v2.0/results?limit=1&page=1" {
		t.Errorf("with a base URL: next %v", r["next"])
	}
}

func TestSubmitTime(t *testing.T) {
	cases := []struct {
		in   any
		want string // isoformat, or "!" and the start of the error
	}{
		{json.Number("1661324097123"), "2022-08-24T06:54:57.123000"},
		{"1661324097123", "2022-08-24T06:54:57.123000"},
		{" +1_661_324_097_123\n", "2022-08-24T06:54:57.123000"},
		{json.Number("-1"), "1969-12-31T23:59:59.999000"},
		{"0", "1970-01-01T00:00:00"},
		{"2022-08-24T06:54:57.123", "2022-08-24T06:54:57.123000"},
		{"2022-08-24T06:54:57.123456Z", "2022-08-24T06:54:57.123456"},
		{"2022-08-24t06:54:57.1z", "2022-08-24T06:54:57.100000"},
		{"2022-08-24T06:54:57.1+00", "2022-08-24T06:54:57.100000"},
		{"2022-08-24T08:54:57.5+02:00", "2022-08-24T06:54:57.500000"},
		{"2022-08-24T01:24:57.5-0530", "2022-08-24T06:54:57.500000"},
		{"2022-8-4T6:5:7.1", "2022-08-04T06:05:07.100000"},
		{"2016-08-15T10:00:00", "2016-08-15T10:00:00"}, // ours; ResultsDB wants a fraction
		{"9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999"},
		{"0001-01-01T00:00:00.0", "0001-01-01T00:00:00"},
		{json.Number("253402300799999"), "9999-12-31T23:59:59.999000"},
		{json.Number("-62135596800000"), "0001-01-01T00:00:00"},
		{json.Number("253402300800000"), "!Malformed Request: submit_time 253402300800000 is outside the years 1 to 9999"},
		{json.Number("-62135596800001"), "!Malformed Request: submit_time -62135596800001 is outside"},
		{json.Number("9223372036854775807"), "!Malformed Request: submit_time 9223372036854775807 is outside"},
		{json.Number("99999999999999999999999"), "!Malformed Request: submit_time 99999999999999999999999 is outside"},
		{"-99999999999999999999999", "!Malformed Request: submit_time -99999999999999999999999 is outside"},
		{"0001-01-01T00:00:00.0+01:00", "!Malformed Request: submit_time 0001-01-01T00:00:00.0+01:00 is outside"},
		{json.Number("1.5"), "!Malformed Request: submit_time: want milliseconds since the epoch, got 1.5"},
		{"2022-02-30T00:00:00.0", "!Malformed Request: submit_time: want YYYY-MM-DDTHH:MM:SS.ffffff"},
		{"2022-08-24T06:54:60.0", "!Malformed Request: submit_time: want"},
		{"2022-08-24T06:54:57.1234567", "!Malformed Request: submit_time: want"},
		{"2022-08-24T06:54:57.1+24:00", "!Malformed Request: submit_time: want"},
		{"2022-08-24T06:54:57.1+02:0000", "!Malformed Request: submit_time: want"},
		{"1_", "!Malformed Request: submit_time: want"},
		{"now", `!Malformed Request: submit_time: want YYYY-MM-DDTHH:MM:SS.ffffff, got "now"`},
		{true, "!Malformed Request: submit_time must be a number or a string, not a boolean"},
	}
	for _, tc := range cases {
		got, err := parseSubmitTime(tc.in)
		if strings.HasPrefix(tc.want, "!") {
			if err == nil || !strings.HasPrefix(err.Error(), tc.want[1:]) {
				t.Errorf("%#v: %v %v, want error %q", tc.in, isoformat(got), err, tc.want[1:])
			}
			continue
		}
		if err != nil || isoformat(got) != tc.want {
			t.Errorf("%#v: %s %v, want %s", tc.in, isoformat(got), err, tc.want)
		}
	}

	// Stored and read back as given on both stores, found by since; out
	// of range is a 400 and stores nothing.
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		for _, when := range []any{"1661324097123", 1661324097123, "0001-01-01T00:00:00.0", "9999-12-31T23:59:59.999999"} {
			b := post("PASSED", "dist.rpmlint", "foo-1", "koji_build", nil)
			b["submit_time"] = when
			m := c.mustPost("/api/v2.0/results", b)
			again := c.get(fmt.Sprintf("/api/v2.0/results/%v", m["id"])).json(t)
			if again["submit_time"] != m["submit_time"] {
				t.Errorf("%v: posted %v, read back %v", when, m["submit_time"], again["submit_time"])
			}
		}
		if got := c.get("/api/v2.0/results?since=2022-08-24T06:54:57.123,2022-08-24T06:54:57.123").list(t); len(got) != 2 {
			t.Errorf("since the millisecond: %d results, want 2", len(got))
		}
		for _, when := range []any{json.Number("253402300800000"), "-99999999999999999999", "1e300"} {
			r := c.post("/api/v2.0/results", map[string]any{"outcome": "PASSED", "testcase": "x", "submit_time": when})
			if r.code != 400 || !strings.HasPrefix(r.message(t), "Malformed Request: submit_time") {
				t.Errorf("submit_time %v: %d %s", when, r.code, r.body)
			}
		}
		if got := c.get("/api/v2.0/results").list(t); len(got) != 4 {
			t.Errorf("%d results, want the 4 accepted ones", len(got))
		}
	})
}

// A POST body must be declared JSON, as ResultsDB (Flask's get_json)
// requires: a form or text body, which any web page can make a browser
// send to another site, is refused unread.
func TestPostNeedsJSONContentType(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		const msg = "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."
		bodies := map[string]string{
			"/api/v2.0/results":   `{"outcome": "PASSED", "testcase": "dist.rpmlint"}`,
			"/api/v2.0/groups":    `{"uuid": "u-1"}`,
			"/api/v2.0/testcases": `{"name": "dist.rpmlint"}`,
		}
		for path, body := range bodies {
			for _, ct := range []string{"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
				h := map[string]string{}
				if ct != "" {
					h["Content-Type"] = ct
				}
				r := c.raw("POST", path, body, h)
				if r.code != http.StatusUnsupportedMediaType || r.message(t) != msg {
					t.Errorf("POST %s as %q: %d %s, want 415", path, ct, r.code, r.body)
				}
			}
		}
		for _, tc := range []struct{ path, ct string }{
			{"/api/v2.0/results", "application/json; charset=utf-8"},
			{"/api/v2.0/groups", "Application/JSON"},
			{"/api/v2.0/testcases", "application/vnd.resultsdb+json"},
		} {
			if r := c.raw("POST", tc.path, bodies[tc.path], map[string]string{"Content-Type": tc.ct}); r.code != 201 {
				t.Errorf("POST %s as %q: %d %s, want 201", tc.path, tc.ct, r.code, r.body)
			}
		}
		if n := len(c.get("/api/v2.0/results").list(t)); n != 1 {
			t.Errorf("%d results stored, want the one sent as JSON", n)
		}
		if n := len(c.get("/api/v2.0/groups").list(t)); n != 1 {
			t.Errorf("%d groups stored, want 1", n)
		}
	})
}

// Where several checks fail, the message is the one ResultsDB 2.2 gives:
// its request parser's "Malformed Request" for a missing or mistyped
// field comes before the outcome's value, which comes before colons in
// data keys, which come before an empty testcase name.
func TestOrderOfChecks(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		cases := []struct{ body, prefix string }{
			{`{"outcome": "FAKEOUTCOME"}`, "Malformed Request: testcase: missing required parameter"},
			{`{"testcase": "x"}`, "Malformed Request: outcome: missing required parameter"},
			{`{"outcome": "FAKEOUTCOME", "testcase": "x", "groups": "g"}`, "Malformed Request: groups must be a list"},
			{`{"outcome": "FAKEOUTCOME", "testcase": "x", "data": "d"}`, "Malformed Request: data must be an object"},
			{`{"outcome": "FAKEOUTCOME", "testcase": "x", "submit_time": "now"}`, "Malformed Request: submit_time"},
			{`{"outcome": "FAKEOUTCOME", "testcase": "", "data": {"a:b": 1}}`, "outcome must be one of"},
			{`{"outcome": "PASSED", "testcase": "", "data": {"a:b": 1}}`, "Colon not allowed in key name: ['a:b']"},
			{`{"outcome": "PASSED", "testcase": {"ref_url": "x"}, "note": "\u0000"}`, "testcase.name not set"},
		}
		for _, tc := range cases {
			r := c.post("/api/v2.0/results", tc.body)
			if r.code != 400 || !strings.HasPrefix(r.message(t), tc.prefix) {
				t.Errorf("%s: %d %s, want 400 %q…", tc.body, r.code, r.body, tc.prefix)
			}
		}
	})
}

// The health check asks the results table, as ResultsDB's does: a
// database that answers but has lost the table is not healthy.
func TestHealthcheckNeedsTheResultsTable(t *testing.T) {
	eachStoreAsIs(t, Options{}, func(t *testing.T, c *client, store Store, dsn string) {
		for _, path := range []string{"/api/v2.0/healthcheck", "/healthcheck"} {
			if r := c.get(path); r.code != 200 {
				t.Fatalf("%s on a sound database: %d %s", path, r.code, r.body)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rename := func(from, to string) {
			t.Helper()
			stmt := "ALTER TABLE " + from + " RENAME TO " + to
			if strings.HasPrefix(dsn, "sqlite:") {
				db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(dsn, "sqlite:")+"?_pragma=busy_timeout(10000)")
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
				return
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		rename("result", "result_gone")
		for _, path := range []string{"/api/v2.0/healthcheck", "/healthcheck"} {
			r := c.get(path)
			if r.code != 503 || r.message(t) != "Unable to communicate with database" {
				t.Errorf("%s without the results table: %d %s, want 503", path, r.code, r.body)
			}
		}
		rename("result_gone", "result")
		if r := c.get("/api/v2.0/healthcheck"); r.code != 200 {
			t.Errorf("with the table back: %d %s", r.code, r.body)
		}
	})
}

// What no store can take is a 400 with one line naming the field, on
// SQLite as on PostgreSQL (where it used to be a 500), and nothing of it
// is stored.
func TestInputNoStoreCanTake(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, _ Store) {
		nul := "a\u0000b"
		good := func(extra map[string]any) map[string]any {
			b := map[string]any{"outcome": "PASSED", "testcase": "dist.rpmlint", "data": map[string]any{"item": "foo-1"}}
			for k, v := range extra {
				b[k] = v
			}
			return b
		}
		posts := []struct {
			path  string
			body  map[string]any
			field string
		}{
			{"/api/v2.0/results", good(map[string]any{"note": nul}), "note"},
			{"/api/v2.0/results", good(map[string]any{"ref_url": nul}), "ref_url"},
			{"/api/v2.0/results", good(map[string]any{"testcase": nul}), "testcase name"},
			{"/api/v2.0/results", good(map[string]any{"testcase": map[string]any{"name": "x", "ref_url": nul}}), "testcase.ref_url"},
			{"/api/v2.0/results", good(map[string]any{"data": map[string]any{"item": nul}}), "data['item']"},
			{"/api/v2.0/results", good(map[string]any{"data": map[string]any{"arch": []any{"x86_64", nul}}}), "data['arch']"},
			{"/api/v2.0/results", good(map[string]any{"data": map[string]any{nul: "x"}}), `data key 'a\x00b'`},
			{"/api/v2.0/results", good(map[string]any{"groups": []any{nul}}), "groups[0].uuid"},
			{"/api/v2.0/results", good(map[string]any{"groups": []any{"ok", map[string]any{"uuid": "u", "description": nul}}}), "groups[1].description"},
			{"/api/v2.0/results", good(map[string]any{"groups": []any{map[string]any{"ref_url": nul}}}), "groups[0].ref_url"},
			{"/api/v2.0/groups", map[string]any{"uuid": nul}, "uuid"},
			{"/api/v2.0/groups", map[string]any{"description": nul}, "description"},
			{"/api/v2.0/groups", map[string]any{"ref_url": nul}, "ref_url"},
			{"/api/v2.0/testcases", map[string]any{"name": nul}, "name"},
			{"/api/v2.0/testcases", map[string]any{"name": "x", "ref_url": nul}, "ref_url"},
		}
		for _, p := range posts {
			r := c.post(p.path, p.body)
			want := "Malformed Request: " + p.field + ": the NUL character (\\u0000) cannot be stored"
			if r.code != 400 || r.message(t) != want {
				t.Errorf("POST %s %v: %d %s, want 400 %q", p.path, p.body, r.code, r.body, want)
			}
		}

		keys := make([]string, 64)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%d", i)
		}
		gets := []struct {
			path    string
			code    int
			message string
		}{
			{"/api/v2.0/results?item=a%00b", 400, "Malformed Request: query parameter 'item': the NUL character (\\u0000) cannot be used"},
			{"/api/v2.0/results?it%00em=a", 400, `Malformed Request: query parameter 'it\x00em': the NUL character (\u0000) cannot be used`},
			{"/api/v2.0/results/latest?item=foo-1&arch=%00", 400, "Malformed Request: query parameter 'arch': the NUL character (\\u0000) cannot be used"},
			{"/api/v2.0/testcases?name=%00", 400, "Malformed Request: query parameter 'name': the NUL character (\\u0000) cannot be used"},
			{"/api/v2.0/groups?description=%00", 400, "Malformed Request: query parameter 'description': the NUL character (\\u0000) cannot be used"},
			{"/api/v2.0/results?item:like=foo%5C", 400, `Malformed Request: item:like: the pattern 'foo\\' ends in a backslash, which escapes nothing`},
			{"/api/v2.0/results?testcases:like=dist.%5C%5C%5C", 400, `Malformed Request: testcases:like: the pattern 'dist.\\\\\\' ends in a backslash, which escapes nothing`},
			{"/api/v2.0/results/latest?testcases:like=%5C", 400, `Malformed Request: testcases:like: the pattern '\\' ends in a backslash, which escapes nothing`},
			{"/api/v2.0/testcases?name:like=x%5C", 400, `Malformed Request: name:like: the pattern 'x\\' ends in a backslash, which escapes nothing`},
			{"/api/v2.0/groups?description:like=x%5C", 400, `Malformed Request: description:like: the pattern 'x\\' ends in a backslash, which escapes nothing`},
			{"/api/v2.0/results/latest?item=foo-1&_distinct_on=" + strings.Join(keys, ","), 400, "Malformed Request: _distinct_on: at most 63 keys, got 64"},
			{"/api/v2.0/results/latest?item=foo-1&_distinct_on=" + strings.Join(keys[:63], ","), 200, ""},
			// An escaped backslash, and bytes that are not UTF-8 (read as
			// U+FFFD, as Werkzeug does), are fine.
			{"/api/v2.0/results?item:like=foo%5C%5C", 200, ""},
			{"/api/v2.0/results?item=%FF%FE&ty%C3pe=x", 200, ""},
			{"/api/v2.0/testcases/%FF", 404, "Testcase not found"},
			{"/api/v2.0/testcases/a%00b", 404, "Testcase not found"},
			{"/api/v2.0/testcases/a%00b/results", 404, "Testcase not found"},
			{"/api/v2.0/groups/a%00b", 404, "Group not found"},
			{"/api/v2.0/groups/a%00b/results", 404, "Group not found: a\x00b"},
		}
		for _, g := range gets {
			r := c.get(g.path)
			if r.code != g.code || g.message != "" && r.message(t) != g.message {
				t.Errorf("GET %.120s: %d %.300s, want %d %q", g.path, r.code, r.body, g.code, g.message)
			}
		}
		// The pages read the same queries.
		for _, path := range []string{"/results?item=%00", "/results/latest?item=foo&x:like=%5C", "/testcases?name:like=%5C", "/groups?description=%00",
			"/testcases/a%00b", "/groups/a%00b"} {
			if r := c.get(path); r.code != 400 && r.code != 404 {
				t.Errorf("page %s: %d, want 400 or 404", path, r.code)
			}
		}
		if n := len(c.get("/api/v2.0/results").list(t)); n != 0 {
			t.Errorf("%d results stored from refused posts", n)
		}
		if n := len(c.get("/api/v2.0/groups").list(t)); n != 0 {
			t.Errorf("%d groups stored from refused posts", n)
		}
	})
}

func TestParseQueryAsWerkzeug(t *testing.T) {
	cases := []struct {
		raw  string
		want map[string][]string
	}{
		{"item=a;b&&type=koji_build&flag", map[string][]string{"item": {"a;b"}, "type": {"koji_build"}, "flag": {""}}},
		{"a+b=c+d%2B&a+b=%zz%4", map[string][]string{"a b": {"c d+", "%zz%4"}}},
		{"x=%C3%A9%FF%E2%82", map[string][]string{"x": {"é\uFFFD\uFFFD"}}},
		{"=v&k=", map[string][]string{"": {"v"}, "k": {""}}},
	}
	for _, tc := range cases {
		v, err := parseQuery(tc.raw)
		if err != nil || !reflect.DeepEqual(map[string][]string(v), tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.raw, v, err, tc.want)
		}
	}
}
