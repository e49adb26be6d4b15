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

var fileResults = []contract.Result{
	{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint", Outcome: contract.Failed, Note: "1 error",
		Arch: contract.Arches{Names: []string{"x86_64", "noarch"}, List: true}, Artifact: "logs/a.log",
		Details: map[string]any{"output": "W: spelling\n", "lines": json.Number("12345678901234567890")},
		Extra:   contract.Extra{"scenario": "x86_64", "count": json.Number("3"), "extra": "a key named extra"}},
	{Item: "xchat-0.5-1.fc20", Type: "koji_build", Outcome: contract.Passed, Arch: contract.OneArch("src")},
	{Item: "xchat-0.5-1.fc20", Type: "koji_build", Outcome: contract.Info, Details: "a line of output"},
}

// resultFiles makes a results file and a details file in dir, as the
// runner does, and a writer to them; done flushes and closes them and
// answers the execution that names them.
func resultFiles(t *testing.T, dir string) (w *ResultWriter, done func() contract.Execution) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := os.Create(filepath.Join(dir, "details.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w = NewResultWriter(f, d)
	return w, func() contract.Execution {
		t.Helper()
		if err := errors.Join(w.Flush(), f.Close(), d.Close()); err != nil {
			t.Fatal(err)
		}
		return contract.Execution{UUID: "u", Artifacts: dir, ResultsFile: "results.jsonl", DetailsFile: "details.jsonl", ResultCount: w.Count()}
	}
}

// writeResults writes rs to a results file and a details file in dir, and
// answers the execution that names them.
func writeResults(t *testing.T, dir string, rs []contract.Result) contract.Execution {
	t.Helper()
	w, done := resultFiles(t, dir)
	for _, r := range rs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	return done()
}

func readAll(t *testing.T, exec contract.Execution, each func(contract.Execution, func(contract.Result) error) error) []contract.Result {
	t.Helper()
	var got []contract.Result
	if err := each(exec, func(r contract.Result) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func withoutDetails(rs []contract.Result) []contract.Result {
	out := append([]contract.Result(nil), rs...)
	for i := range out {
		out[i].Details = nil
	}
	return out
}

// A results file gives back what was written: every field, the extra keys
// and the details, numbers as written; read without details it gives the
// rest, and a results file holds no details (they are in the details
// file). A file shorter than its execution says fails, naming it.
func TestResultsFileRoundTrips(t *testing.T) {
	exec := writeResults(t, t.TempDir(), fileResults)
	if got := readAll(t, exec, Each); !reflect.DeepEqual(got, fileResults) {
		t.Errorf("read back\n%#v\nwant\n%#v", got, fileResults)
	}
	if got := readAll(t, exec, EachWithoutDetails); !reflect.DeepEqual(got, withoutDetails(fileResults)) {
		t.Errorf("read back without details\n%#v\nwant\n%#v", got, withoutDetails(fileResults))
	}
	raw, err := os.ReadFile(filepath.Join(exec.Artifacts, exec.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "spelling") || strings.Contains(string(raw), `"details"`) {
		t.Errorf("the results file holds details:\n%s", raw)
	}
	if worst, err := Worst(exec); err != nil || worst != contract.Failed {
		t.Errorf("worst = %s, %v", worst, err)
	}
	exec.ResultCount = 4
	if err := Each(exec, func(contract.Result) error { return nil }); err == nil || !strings.Contains(err.Error(), "holds 3 results, not 4") {
		t.Errorf("short file: %v", err)
	}
}

// A details file that stops before its results file fails the read,
// naming the details file and the result; one that goes on past it, or is
// missing, fails naming it; none of these matters to a read without
// details.
func TestDetailsFileShortLongOrMissing(t *testing.T) {
	exec := writeResults(t, t.TempDir(), fileResults)
	dpath := filepath.Join(exec.Artifacts, exec.DetailsFile)
	raw, err := os.ReadFile(dpath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dpath, append(raw, "\"one too many\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Each(exec, func(contract.Result) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "details.jsonl holds more than the 3 results") {
		t.Errorf("long details file: %v; want an error naming it", err)
	}
	if got := readAll(t, exec, EachWithoutDetails); len(got) != len(fileResults) {
		t.Errorf("read without details of a long details file: %d results", len(got))
	}
	first := strings.SplitAfter(string(raw), "\n")[0]
	if err := os.WriteFile(dpath, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Each(exec, func(contract.Result) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "details.jsonl, result 2") {
		t.Errorf("short details file: %v; want an error naming it and result 2", err)
	}
	if got := readAll(t, exec, EachWithoutDetails); len(got) != len(fileResults) {
		t.Errorf("read without details of a short details file: %d results", len(got))
	}
	os.Remove(dpath)
	if err := Each(exec, func(contract.Result) error { return nil }); err == nil || !strings.Contains(err.Error(), "details.jsonl") {
		t.Errorf("missing details file: %v; want an error naming it", err)
	}
}

// A results file written before details were kept apart (each line holds
// its result's details) still reads: with details, and without.
func TestResultsFileWithDetailsInline(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for _, r := range fileResults {
		b, err := json.Marshal(struct {
			plainResult
			Extra contract.Extra `json:"extra,omitempty"`
		}{plainResult(r), r.Extra})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, "results.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exec := contract.Execution{UUID: "u", Artifacts: dir, ResultsFile: "results.jsonl", ResultCount: len(fileResults)}
	if got := readAll(t, exec, Each); !reflect.DeepEqual(got, fileResults) {
		t.Errorf("read back\n%#v\nwant\n%#v", got, fileResults)
	}
	if got := readAll(t, exec, EachWithoutDetails); !reflect.DeepEqual(got, withoutDetails(fileResults)) {
		t.Errorf("read back without details\n%#v\nwant\n%#v", got, withoutDetails(fileResults))
	}
}

// A result that cannot be encoded is refused and leaves both files in
// step: the results after it read back with their own details.
func TestResultWriterKeepsFilesInStep(t *testing.T) {
	w, done := resultFiles(t, t.TempDir())
	bad := contract.Result{Item: "x", Type: "koji_build", Outcome: contract.Passed, Details: "fine", Extra: contract.Extra{"f": func() {}}}
	if err := w.Write(fileResults[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(bad); err == nil || !strings.Contains(err.Error(), "result 2") {
		t.Errorf("unencodable result: %v; want an error naming result 2", err)
	}
	if err := w.Write(fileResults[2]); err != nil {
		t.Fatal(err)
	}
	exec := done()
	want := []contract.Result{fileResults[0], fileResults[2]}
	if got := readAll(t, exec, Each); !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%#v\nwant\n%#v", got, want)
	}
}
