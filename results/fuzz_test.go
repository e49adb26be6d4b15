package results

import (
	"encoding/json"
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
