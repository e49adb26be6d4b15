package reporter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/bodhi"
)

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
		if msg := bodhi.Message(data); msg == "" || strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("Bodhi's error message %q is not one line", msg)
		}
	})
}
