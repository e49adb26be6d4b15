package resultsdb

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The parsers of what clients send: the since parameter, the query string
// of /results, the body of POST /results and its submit_time, and any
// query string with the links made of it. Seeds: testdata/fuzz/.

func FuzzParseSince(f *testing.F) {
	f.Add("2016-08-15T13:29:06")
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseSince(s)
		if err != nil {
			return
		}
		// What was accepted reads back the same once written out.
		again, _, err := parseSince(isoformat(start))
		if err != nil || !again.Equal(start) {
			t.Fatalf("%q: start %s does not read back (%v)", s, isoformat(start), err)
		}
		if !end.IsZero() && !strings.Contains(s, ",") {
			t.Fatalf("%q: an end without a comma", s)
		}
	})
}

func FuzzResultQuery(f *testing.F) {
	f.Add("item=foo-1.0-1.fc24&type=koji_build&outcome=passed,FAILED&since=2016-01-01,2016-02-01&testcases:like=dist.*")
	outcomes := append(append([]string{}, BaseOutcomes...), "CRASHED")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, _, err := parseResultQuery(v, outcomes, true)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("%q: error %T is not a client error", raw, err)
			}
			return
		}
		for _, o := range q.Outcomes {
			if !contains(outcomes, o) {
				t.Fatalf("%q: outcome %q let through", raw, o)
			}
		}
		// Every key but the known parameters filters on data, once.
		others := 0
		for k := range v {
			if !resultParams[k] && k != "origin" {
				others++
			}
		}
		if others != len(q.Data) {
			t.Fatalf("%q: %d data filters from %d other keys", raw, len(q.Data), others)
		}
		prevNext("http://h/api/v2.0/results?"+raw, true)
	})
}

func FuzzResultPost(f *testing.F) {
	f.Add([]byte(`{"outcome": "PASSED", "testcase": {"name": "dist.rpmlint"}, "data": {"item": "x", "arch": ["a", 1]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseObject(body)
		if err != nil {
			return
		}
		in, err := parseResultPost(m, BaseOutcomes)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("%s: error %T is not a client error", body, err)
			}
			return
		}
		if !contains(BaseOutcomes, in.Outcome) || in.Testcase.Name == "" {
			t.Fatalf("%s: accepted outcome %q testcase %q", body, in.Outcome, in.Testcase.Name)
		}
		for _, p := range in.Data {
			if strings.Contains(p.Key, ":") {
				t.Fatalf("%s: data key %q with a colon accepted", body, p.Key)
			}
		}
		for _, g := range in.Groups {
			if g.UUID == "" {
				t.Fatalf("%s: group without uuid", body)
			}
		}
	})
}

func FuzzSubmitTime(f *testing.F) {
	for _, s := range []string{"1661324097123", "2022-08-24T08:54:57.5+02:00", "2022-8-4t6:5:7.1z", " -1_000 ", "9999-12-31T23:59:59.999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSubmitTime(s)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("%q: error %T is not a client error", s, err)
			}
			return
		}
		if got.Before(minSubmitTime) || got.After(maxSubmitTime) || got.Location() != time.UTC {
			t.Fatalf("%q: %v accepted, outside years 1 to 9999 UTC", s, got)
		}
		// What was accepted is stored to the microsecond and reads back
		// the same once written out.
		if got.Nanosecond()%1000 != 0 {
			t.Fatalf("%q: %v has nanoseconds", s, got)
		}
		again, err := parseSubmitTime(isoformat(got))
		if err != nil || !again.Equal(got) {
			t.Fatalf("%q: %s does not read back (%v, %v)", s, isoformat(got), again, err)
		}
	})
}

func FuzzQueryString(f *testing.F) {
	f.Add("item%3Alike=foo%2A&_=%C3%A9%20%26%2B%FF&limit=1&x=a;b&&%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := parseQuery(raw)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("%q: error %T is not a client error", raw, err)
			}
			return
		}
		for k, vals := range v {
			for _, s := range append([]string{k}, vals...) {
				if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
					t.Fatalf("%q: %q let through", raw, s)
				}
			}
		}
		// The query as next and prev links show it (Werkzeug's
		// request.url) asks for the same, unless a '%' that escapes
		// nothing is followed by one that does: "%0%610" shows as "%0a0",
		// in ResultsDB's links as in ours (testdata/fuzz/FuzzQueryString).
		iri := toIRI(pyQuote(raw, urlQuerySafe, false), queryStayQuote)
		if !utf8.ValidString(iri) {
			t.Fatalf("%q: link query %q is not UTF-8", raw, iri)
		}
		if strayPercent(raw) {
			return
		}
		again, err := parseQuery(iri)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("%q: link query %q reads as %v (%v), not %v", raw, iri, again, err, v)
		}
		prevNext("http://h/api/v2.0/results?"+iri, true)
	})
}

// strayPercent reports a '%' not followed by two hex digits.
func strayPercent(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			_, ok1 := unhex(byteAt(s, i+1))
			_, ok2 := unhex(byteAt(s, i+2))
			if !ok1 || !ok2 {
				return true
			}
		}
	}
	return false
}

func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func FuzzRegressionQuery(f *testing.F) {
	f.Add("item=foo-1:1.0-1.fc40,bar-2-1&testcases=dist.rpmlint&since=2024-01-01,2024-02-01&result_id=3,17")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := parseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseRegressionQuery(v)
		if err != nil {
			bad, ok := err.(*badRequest)
			if !ok {
				t.Fatalf("%q: error %T is not a client error", raw, err)
			}
			if strings.Contains(bad.msg, "\n") {
				t.Fatalf("%q: the error is not one line: %q", raw, bad.msg)
			}
			return
		}
		for _, id := range q.IDs {
			if id <= 0 {
				t.Fatalf("%q: result id %d let through", raw, id)
			}
		}
		for _, list := range [][]string{q.Items, q.Testcases} {
			for _, s := range list {
				if s == "" || strings.Contains(s, ",") {
					t.Fatalf("%q: filter value %q", raw, s)
				}
			}
		}
	})
}
