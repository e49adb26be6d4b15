package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
)

// groupResults counts the results ResultsDB holds in a group.
func groupResults(t *testing.T, url, group string) int {
	t.Helper()
	resp, err := http.Get(url + "/api/v2.0/results?groups=" + group)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("results of group %s: %v", group, err)
	}
	return len(page.Data)
}

const reportTAP = `TAP version 13
1..2
not ok 1 - rpmlint
  ---
  outcome: FAILED
  note: 5 errors, 10 warnings
  arch: x86_64
  ...
ok 2 - rpmlint srpm
  ---
  arch: src
  ...
`

func TestReportDryRunJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out.tap")
	os.WriteFile(file, []byte(reportTAP), 0o644)
	code, stdout, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + t.TempDir()},
		"report", "--dry-run", "--json", "-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--checkname", "rpmlint", "--namespace", "dist", "--uuid", "u-dry", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out reportOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if out.Format != "tap" || len(out.Results) != 2 || len(out.Posts) != 2 || out.Delivery != nil || !out.DryRun {
		t.Fatalf("output = %+v", out)
	}
	p := out.Posts[0]
	if p.Testcase.Name != "dist.rpmlint" || p.Outcome != "FAILED" || p.Groups[0].UUID != "u-dry" || p.Data["item"] != "xchat-0.5-1.fc20" {
		t.Errorf("post = %+v", p)
	}
}

func TestReportSendsToEmbeddedResultsDBOnce(t *testing.T) {
	url := resultsdbtest.Start(t)
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir(), "TASKOTRON_RESULTSDB_URL=" + url}
	exec := `{"uuid": "0b5cc8a6-1111-4bbb-8ccc-000000000001", "execution_status": "OK", "exit_code": 0, "artifacts": "",
	  "item": "xchat-0.5-1.fc20", "item_type": "koji_build", "taskname": "rpmlint", "arch": "x86_64",
	  "results": [{"item": "xchat-0.5-1.fc20", "type": "koji_build", "checkname": "dist.rpmlint", "outcome": "PASSED", "arch": "x86_64"},
	              {"item": "xchat-0.5-1.fc20", "type": "koji_build", "checkname": "dist.rpmlint", "outcome": "FAILED", "note": "1 error", "arch": "src"}]}`
	file := filepath.Join(t.TempDir(), "exec.json")
	os.WriteFile(file, []byte(exec), 0o644)
	code, stdout, stderr := runCLI(t, env, "report", file)
	if code != 0 || !strings.Contains(stdout, "stored 2, already present 0, spooled 0") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, env, "report", file)
	if code != 0 || !strings.Contains(stdout, "already reported") {
		t.Fatalf("second report: exit %d\n%s", code, stdout)
	}
	if n := groupResults(t, url, "0b5cc8a6-1111-4bbb-8ccc-000000000001"); n != 2 {
		t.Fatalf("ResultsDB holds %d results of the execution, want 2", n)
	}
}

// Results reported while ResultsDB is away wait in the spool, and
// `report --flush` sends them once it is back, saying how many.
func TestReportFlushSendsWhatWasSpooled(t *testing.T) {
	dataDir := t.TempDir()
	spoolTwoPosts(t, dataDir)
	url := resultsdbtest.Start(t)
	code, stdout, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + dataDir, "TASKOTRON_RESULTSDB_URL=" + url}, "report", "--flush")
	if want := "2 of 2 spooled posts sent, 0 left; 0 of 0 Bodhi comments sent, 0 left\n"; code != 0 || stdout != want {
		t.Fatalf("report --flush: exit %d, printed %q, want %q\n%s", code, stdout, want, stderr)
	}
	if n := groupResults(t, url, spooledGroup); n != 2 {
		t.Fatalf("ResultsDB holds %d results after the flush, want 2", n)
	}
}

func TestReportBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.txt")
	os.WriteFile(garbage, []byte("hello\n"), 0o644)
	broken := filepath.Join(dir, "broken.tap")
	os.WriteFile(broken, []byte("TAP version 13\n1..3\nok 1\n  ---\n  outcome: SUPERB\n  ...\nok 2\n"), 0o644)
	env := []string{"TASKOTRON_DATA_DIR=" + dir}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report"}, 2, "usage: taskotron report"},
		{[]string{"report", "--dry-run", filepath.Join(dir, "none.tap")}, 1, "none.tap"},
		{[]string{"report", "--dry-run", garbage}, 1, "garbage.txt: task output is neither TAP13"},
		{[]string{"report", "--dry-run", "-i", "x", "-t", "koji_build", "--checkname", "c", broken}, 1, "broken.tap: 2 problems in task output: test 1 (line 3): unknown outcome \"SUPERB\""},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(t, env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q (stdout %q)", c.args, code, stderr, stdout)
		}
	}
}
