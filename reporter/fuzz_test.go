package reporter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

// FuzzParseOutput checks that any task output either gives results that
// are complete and serialise as JSON (the contract maps), or an error, and
// that TAP which breaks the protocol is never read without one.
func FuzzParseOutput(f *testing.F) {
	f.Add([]byte("TAP version 13\n1..1\nnot ok 1 - x\n  ---\n  outcome: FAILED\n  details: {output: boom}\n  ...\n"))
	f.Add([]byte("results:\n  - {item: a, type: koji_build, outcome: PASSED, arch: [x86_64]}\n"))
	f.Add([]byte("TAP version 13\n1..3\nok 1\nok 2\nok 2\nTAP version 13\n1..1\nok 1\n"))
	d := Defaults{CheckName: "check", Namespace: "dist", Item: "item-1-1", Type: "koji_build", Arch: "x86_64"}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseOutputDetail(data, d)
		if err == nil && len(out.Problems) > 0 {
			t.Fatalf("TAP problems %v, but no error", out.Problems)
		}
		results := out.Results
		for _, r := range results {
			if r.Item == "" || r.Type == "" || r.CheckName == "" {
				t.Fatalf("incomplete result %+v", r)
			}
			if _, err := contract.ParseOutcome(string(r.Outcome)); err != nil || r.Outcome == "" {
				t.Fatalf("bad outcome %q", r.Outcome)
			}
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("result does not serialise: %v (%+v)", err, r)
			}
			var back contract.Result
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatalf("result does not read back: %v (%s)", err, raw)
			}
		}
	})
}

// FuzzResultsDBAnswer feeds ResultsDB answers (a results page, an error
// body; Bodhi's error bodies too) to what reads them: a page decodes or fails cleanly, a stored
// result's fingerprint is computable, and an error message is one line.
func FuzzResultsDBAnswer(f *testing.F) {
	f.Add([]byte(`{"next": null, "prev": null, "data": [{"id": 1, "groups": ["g"], "testcase": {"name": "dist.rpmlint"}, "submit_time": "2016-08-15T13:29:06.123456", "outcome": "PASSED", "note": null, "ref_url": "u", "data": {"item": ["x-1-1"], "arch": ["x86_64", "noarch"]}}]}`))
	f.Add([]byte(`{"data": [{"id": "7", "groups": [{"uuid": "g"}], "testcase": "t", "submit_time": "2024-01-01T00:00:00Z", "outcome": "failed", "data": {"item": "x", "n": 3, "m": null}}]}`))
	f.Add([]byte(`{"message": "outcome must be one of (PASSED, INFO, FAILED, NEEDS_INSPECTION)"}`))
	f.Add([]byte(`{"detail": [{"loc": ["body", "outcome"], "msg": "field required", "type": "value_error.missing"}]}`))
	f.Add([]byte(`{"status": "error", "errors": [{"location": "body", "name": "update", "description": "Invalid update specified: X"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var page struct {
			Data []StoredResult `json:"data"`
			Next *string        `json:"next"`
		}
		if json.Unmarshal(data, &page) == nil {
			for _, s := range page.Data {
				if s.Data == nil {
					t.Fatalf("decoded result without a data map: %+v", s)
				}
				_ = storedFingerprint(s)
			}
		}
		if msg := ErrorMessage(data); msg == "" || strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("error message %q is not one line", msg)
		}
		if msg := bodhiMessage(data); msg == "" || strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("Bodhi's error message %q is not one line", msg)
		}
	})
}
