package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/resultsdb"
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
	// ResultsDB holds both: the second report finds them there.
	code, stdout, _ = runCLI(t, env, "report", file)
	if code != 0 || !strings.Contains(stdout, "stored 0, already present 2, spooled 0") {
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

// brokenTAP are streams whose every test line says ok but which break
// TAP13: each must make report fail, naming the line.
var brokenTAP = []struct{ name, tap, want string }{
	{"two version lines", "TAP version 13\n1..1\nok 1 - a\nTAP version 13\n1..1\nok 1 - b\n", "line 4: second version line (the first is at line 1)"},
	{"no plan", "TAP version 13\nok 1 - a\nok 2 - b\n", "no plan (1..N) in the stream"},
	{"numbers going backwards", "TAP version 13\n1..3\nok 1 - a\nok 3 - c\nok 2 - b\n", "line 5: test number 2 out of order (after 3)"},
	{"a duplicate hiding a missing test", "TAP version 13\n1..3\nok 1 - a\nok 2 - b\nok 2 - c\n", "line 5: duplicate test number 2; line 2: 1 planned tests missing: 3"},
	{"tests after a trailing plan", "TAP version 13\nok 1 - a\nok 2 - b\n1..2\nok 3 - c\n", "line 5: test after the plan at line 4, which followed earlier tests"},
}

func TestReportBrokenTAPExitsNonZeroNamingTheLine(t *testing.T) {
	dir := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + dir}
	for i, c := range brokenTAP {
		file := filepath.Join(dir, fmt.Sprintf("broken-%d.tap", i))
		os.WriteFile(file, []byte(c.tap), 0o644)
		code, stdout, stderr := runCLI(t, env, "report", "--dry-run", "-i", "x-1-1", "-t", "koji_build", "--checkname", "c", file)
		if code != 1 || !strings.HasPrefix(stderr, "taskotron report: "+file+": ") || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q, want exit 1 and one line with %q", c.name, code, stderr, c.want)
		}
		// What could be read is still shown, each problem once.
		if !strings.Contains(stdout, "PASSED") {
			t.Errorf("%s: stdout\n%s", c.name, stdout)
		}
		for _, line := range strings.Split(c.want, "; ") {
			if strings.Count(stdout, line) != 1 {
				t.Errorf("%s: %q is not said once in stdout\n%s", c.name, line, stdout)
			}
		}
	}
	// The lenient cases stay a success: noise first, SKIP/TODO spellings,
	// a block after a comment line, a block scalar holding "...".
	ok := filepath.Join(dir, "lenient.tap")
	os.WriteFile(ok, []byte("Running the check...\nTAP version 13\n1..3\nok 1 - a # skipped: no network\nnot ok 2 - b # todo later\n"+
		"not ok 3 - c\n# details below\n  ---\n  outcome: FAILED\n  details:\n    output: |\n      a\n      ...\n      b\n  ...\n"), 0o644)
	code, stdout, stderr := runCLI(t, env, "report", "--dry-run", "--json", "-i", "x-1-1", "-t", "koji_build", "--checkname", "c", ok)
	var out reportOutput
	if err := json.Unmarshal([]byte(stdout), &out); code != 0 || err != nil {
		t.Fatalf("lenient: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if len(out.Results) != 3 || out.Results[2].Outcome != "FAILED" || len(out.Problems) != 0 || len(out.Errors) != 0 {
		t.Errorf("lenient: %+v", out)
	}
}

// Input without end is one line naming the file and the limit, for every
// command that reads a file whole.
func TestUnboundedInputIsOneLine(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do:\n    - {tasks: [rpmlint]}\n"), 0o644)
	env := []string{"TASKOTRON_DATA_DIR=" + dir, "TASKOTRON_LOG_LEVEL=error"}
	for _, args := range [][]string{
		{"report", "/dev/zero"},
		{"explain", "--rules", rules, "/dev/zero"},
		{"trigger", "--no-dedup", "/dev/zero"},
	} {
		start := time.Now()
		code, _, stderr := runCLI(t, env, args...)
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "/dev/zero") || !strings.Contains(stderr, "larger than 64 MiB") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("%v took %s", args, took)
		}
	}
	// Files read at start are capped too, lower: a configuration and a
	// rules file are small.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "/dev/zero", "config"}, "config file /dev/zero: larger than 1 MiB"},
		{[]string{"trigger", "--rules", "/dev/zero", "--no-dedup", rules}, "rules file /dev/zero: larger than 16 MiB"},
		{[]string{"explain", "--rules", "/dev/zero", rules}, "rules file /dev/zero: larger than 16 MiB"},
	} {
		code, _, stderr := runCLI(t, env, c.args...)
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", c.args, code, stderr, c.want)
		}
	}
}

// ResultsDB refusing results is a failure of report, as of runtask: the
// exit status says so and one line says how many and where they are kept.
func TestReportRefusedResultsExitNonZero(t *testing.T) {
	dir := t.TempDir()
	store, err := resultsdb.Open(context.Background(), "sqlite:"+filepath.Join(dir, "resultsdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// A ResultsDB without ADDITIONAL_RESULT_OUTCOMES refuses CRASHED.
	srv := httptest.NewServer(resultsdb.NewServer(store, resultsdb.Options{}))
	defer srv.Close()
	env := []string{"TASKOTRON_DATA_DIR=" + dir, "TASKOTRON_RESULTSDB_URL=" + srv.URL}
	spool := filepath.Join(dir, "spool")
	for _, c := range []struct {
		uuid, results, want string
	}{
		{"0b5cc8a6-2222-4bbb-8ccc-000000000001", `{"item": "x-1-1", "type": "koji_build", "checkname": "dist.c", "outcome": "CRASHED", "note": "boom"}`,
			"ResultsDB refused 1 of 1 results (kept in " + filepath.Join(spool, "rejected") + " with its answer)"},
		{"0b5cc8a6-2222-4bbb-8ccc-000000000002", `{"item": "x-1-1", "type": "koji_build", "checkname": "dist.c", "outcome": "PASSED"},
		  {"item": "x-1-1", "type": "koji_build", "checkname": "dist.c", "outcome": "CRASHED", "arch": "src"}`,
			"ResultsDB refused 1 of 2 results"},
	} {
		file := filepath.Join(dir, c.uuid+".json")
		os.WriteFile(file, []byte(`{"uuid": "`+c.uuid+`", "execution_status": "OK", "item": "x-1-1", "item_type": "koji_build", "taskname": "c", "results": [`+c.results+`]}`), 0o644)
		code, stdout, stderr := runCLI(t, env, "report", file)
		// The log says why ResultsDB refused; the last line says what it means.
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.HasPrefix(last, "taskotron report: "+file+": ") || !strings.Contains(last, c.want) || strings.Count(stderr, "taskotron report:") != 1 {
			t.Errorf("%s: exit %d, stderr %q, want exit 1 and %q\n%s", c.uuid, code, stderr, c.want, stdout)
		}
		names, _ := os.ReadDir(filepath.Join(spool, "rejected"))
		found := false
		for _, n := range names {
			found = found || strings.HasPrefix(n.Name(), c.uuid)
		}
		if !found {
			t.Errorf("%s: the refused result is not kept in %s", c.uuid, filepath.Join(spool, "rejected"))
		}
	}
	if n := groupResults(t, srv.URL, "0b5cc8a6-2222-4bbb-8ccc-000000000002"); n != 1 {
		t.Errorf("ResultsDB holds %d results of the second execution, want the PASSED one", n)
	}
}

// A result's line: outcome in a column of 16, checkname, type, item, arch,
// note, each made printable.
func TestPrintResultLine(t *testing.T) {
	var b bytes.Buffer
	printResult(&b, contract.Result{Outcome: contract.Passed, CheckName: "dist.rpmlint", Type: "koji_build", Item: "xchat-0.5-1.fc20", Arch: contract.OneArch("x86_64"), Note: "0 errors\x1b[2J"})
	printResult(&b, contract.Result{Outcome: contract.NeedsInspection, CheckName: "dist.rpmlint", Type: "koji_build", Item: "xchat-0.5-1.fc20"})
	want := "  PASSED           dist.rpmlint  koji_build xchat-0.5-1.fc20 x86_64  (0 errors\\x1b[2J)\n" +
		"  NEEDS_INSPECTION dist.rpmlint  koji_build xchat-0.5-1.fc20\n"
	if b.String() != want {
		t.Errorf("printed\n%q\nwant\n%q", b.String(), want)
	}
}
