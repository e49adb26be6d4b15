package resultsdb

import (
	"net/url"
	"strings"
	"testing"
)

// The parsers of what clients send: the since parameter, the query string
// of /results, and the body of POST /results. Seeds: testdata/fuzz/.

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
		q, _, err := parseResultQuery(v, outcomes)
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
			if !resultParams[k] {
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
