package results

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

// A results file gives back what was written: every field, the extra keys
// and the details, numbers as written; a file shorter than its execution
// says fails, naming it.
func TestResultsFileRoundTrips(t *testing.T) {
	want := []contract.Result{
		{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: contract.Failed, Note: "1 error",
			Arch: contract.Arches{Names: []string{"x86_64", "noarch"}, List: true}, Artifact: "logs/a.log",
			Details: map[string]any{"output": "W: spelling\n", "lines": json.Number("12345678901234567890")},
			Extra:   contract.Extra{"scenario": "x86_64", "count": json.Number("3"), "extra": "a key named extra"}},
		{Item: "xchat-0.5-1.fc20", Type: "koji_build", Outcome: contract.Passed, Arch: contract.OneArch("src")},
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w := NewResultWriter(f)
	for _, r := range want {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	exec := contract.Execution{UUID: "u", Artifacts: dir, ResultsFile: "results.jsonl", ResultCount: w.Count()}
	var got []contract.Result
	if err := Each(exec, func(r contract.Result) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%#v\nwant\n%#v", got, want)
	}
	if worst, err := Worst(exec); err != nil || worst != contract.Failed {
		t.Errorf("worst = %s, %v", worst, err)
	}
	exec.ResultCount = 3
	if err := Each(exec, func(contract.Result) error { return nil }); err == nil || !strings.Contains(err.Error(), "holds 2 results, not 3") {
		t.Errorf("short file: %v", err)
	}
}
