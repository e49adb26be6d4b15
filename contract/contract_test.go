package contract

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// sameJSON compares two JSON texts as values.
func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("%s changed in a round trip:\n in: %s\nout: %s", what, a, b)
	}
}

func TestEveryCorpusMessageRoundTrips(t *testing.T) {
	files, _ := filepath.Glob("../testdata/messages/*.json")
	if len(files) < 50 {
		t.Fatalf("found %d corpus messages; testdata/messages is the corpus", len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if m.Topic == "" || m.Body == nil {
			t.Errorf("%s: topic %q body %v", f, m.Topic, m.Body)
		}
		if _, ok := m.Extra["source"]; !ok {
			t.Errorf("%s: the corpus 'source' key should be kept in Extra", f)
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, filepath.Base(f), raw, out)

		asMap, err := ToMap(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := FromMap(asMap, &back); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(back)
		sameJSON(t, filepath.Base(f)+" via map", raw, again)
	}
}

func TestEveryContractKeepsUnknownKeys(t *testing.T) {
	cases := map[string]struct {
		v   any
		raw string
	}{
		"job": {new(Job), `{"item":"xchat-0.5-1.fc20","item_type":"koji_build","taskname":"rpmlint","arch":"x86_64",
			"uuid":"u1","msg_id":"m1","created":"2024-05-01T10:00:00.123456Z","attempt":2,"priority":5,
			"git_repo":"/mirror/rpmlint","match_host_arch":true,"scenario":{"a":[1,2]}}`},
		"runner input": {new(RunnerInput), `{"item":"i","item_type":"koji_build","uuid":"u","arch":"noarch","taskname":"t","formula":"runtask.yml","note":"x"}`},
		"execution": {new(Execution), `{"uuid":"u","execution_status":"NOT_OK","status":"checkout failed","exit_code":1,
			"artifacts":"/a/u","results":[{"item":"i","type":"koji_build","outcome":"CRASHED","note":"n","arch":["x86_64","noarch"],"scenario":"s"}],"host":"h1"}`},
		"result": {new(Result), `{"item":"i","type":"bodhi_update","checkname":"dist.upgradepath","outcome":"PASSED","arch":"noarch",
			"details":{"output":"a\nb"},"artifact":"x.log","scenario":"fedora.updates"}`},
		"resultsdb post": {new(ResultsDBPost), `{"outcome":"FAILED","testcase":{"name":"dist.rpmlint","ref_url":"https://x/rpmlint"},
			"groups":[{"uuid":"u","ref_url":"https://x/jobs/u","description":"rpmlint on xchat"}],"note":"5 errors",
			"ref_url":"https://x/artifacts/u/x.log","data":{"item":"xchat","type":"koji_build","arch":["x86_64"]},"_auth":null}`},
		"bodhi comment": {new(BodhiComment), `{"update":"FEDORA-2024-1","text":"Taskotron: …","karma":0,"csrf_token":"t"}`},
	}
	for name, c := range cases {
		if err := json.Unmarshal([]byte(c.raw), c.v); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		out, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, name, []byte(c.raw), out)
	}
}

func TestJobFieldsAreTyped(t *testing.T) {
	var j Job
	raw := `{"item":"x","item_type":"koji_build","taskname":"rpmlint","arch":"x86_64","uuid":"u","msg_id":"m",
		"created":"2024-05-01T10:00:00Z","attempt":2,"priority":5,"extra_key":"v"}`
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		t.Fatal(err)
	}
	if j.TaskName != "rpmlint" || j.Attempt != 2 || j.Priority != 5 || !j.Created.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("job %+v", j)
	}
	if j.Extra["extra_key"] != "v" || len(j.Extra) != 1 {
		t.Errorf("extra %v", j.Extra)
	}
}

// Keys are matched exactly: an unknown key that differs from a field's
// key only in case stays an unknown key, it does not fill (or break) the
// field, and the value round-trips.
func TestKeysDifferingInCaseStayExtra(t *testing.T) {
	raw := `{"item":"i","type":"koji_build","checkname":"dist.x","outcome":"PASSED","arch":"x86_64","ArCh":[0],"Item":"other"}`
	var r Result
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	if r.Item != "i" || len(r.Arch.Names) != 1 || r.Arch.Names[0] != "x86_64" || r.Extra["Item"] != "other" || r.Extra["ArCh"] == nil {
		t.Fatalf("result %+v, extra %v", r, r.Extra)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "result with keys differing in case", []byte(raw), out)
}

func TestWrongTypesAreErrors(t *testing.T) {
	var j Job
	if err := json.Unmarshal([]byte(`{"item": 5}`), &j); err == nil {
		t.Error("a number as item should be an error")
	}
	var r Result
	if err := json.Unmarshal([]byte(`{"item":"i","arch":{"x":1}}`), &r); err == nil {
		t.Error("a map as arch should be an error")
	}
	var m Message
	if err := json.Unmarshal([]byte(`[1,2]`), &m); err == nil {
		t.Error("a list as message should be an error")
	}
}

func TestOutcomeOrder(t *testing.T) {
	if Worst(Passed, Failed) != Failed || Worst(Crashed, Failed) != Crashed || Worst(Info, Passed) != Info {
		t.Error("worst outcome wrong")
	}
	if o, err := ParseOutcome(" failed "); err != nil || o != Failed {
		t.Errorf("ParseOutcome = %v %v", o, err)
	}
	if o, _ := ParseOutcome(""); o != NeedsInspection {
		t.Errorf("empty outcome = %v, want NEEDS_INSPECTION", o)
	}
	if _, err := ParseOutcome("WAIVED"); err == nil {
		t.Error("unknown outcome accepted")
	}
	got := Summary([]Outcome{Failed, Passed, Passed, Info, Passed, Failed})
	if got != "3 PASSED, 1 INFO, 2 FAILED" {
		t.Errorf("summary %q", got)
	}
	if !Aborted.Broken() || Failed.Broken() {
		t.Error("Broken wrong")
	}
}

// MarshalList writes, byte for byte, what json.Marshal writes for a list:
// the job queue, the job log and the dedup journal read it as that.
func TestMarshalListIsJSONMarshal(t *testing.T) {
	jobs := []Job{
		{UUID: "u1", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64"},
		{UUID: "u2", Item: "<a&b>", ItemType: "bodhi_update", TaskName: "depcheck", Arch: "noarch", Extra: Extra{"zz": []any{"x", 1.5}, "aa": "é\u2028"}},
	}
	posts := []ResultsDBPost{{Outcome: Passed, Testcase: TestcaseRef{Name: "dist.rpmlint"}, Note: "0 errors", Extra: Extra{"k": "v"}}}
	for _, c := range []struct {
		name      string
		got, want func() ([]byte, error)
	}{
		{"jobs", func() ([]byte, error) { return MarshalList(jobs) }, func() ([]byte, error) { return json.Marshal(jobs) }},
		{"no jobs", func() ([]byte, error) { return MarshalList([]Job(nil)) }, func() ([]byte, error) { return json.Marshal([]Job{}) }},
		{"posts", func() ([]byte, error) { return MarshalList(posts) }, func() ([]byte, error) { return json.Marshal(posts) }},
	} {
		got, err := c.got()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want, err := c.want()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\nMarshalList  %s\njson.Marshal %s", c.name, got, want)
		}
	}
}
