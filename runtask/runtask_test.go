package runtask

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
)

func TestRuntaskReportsToResultsDB(t *testing.T) {
	url := startResultsDB(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.URL = url
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", "rt-1", "../tasks/nvr-format"}, cfg, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "results stored in ResultsDB at "+url+" (1)") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	client, err := reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := client.GroupResults(context.Background(), "rt-1")
	if err != nil || len(rs) != 1 || rs[0].Testcase != "dist.nvr-format" || rs[0].Outcome != "PASSED" {
		t.Fatalf("stored: %v %+v", err, rs)
	}
	// A run that ResultsDB cannot take right now is spooled, not lost.
	cfg.ResultsDB.URL = "http://127.0.0.1:1/api/v2.0"
	cfg.Reporter.Spool = filepath.Join(t.TempDir(), "spool")
	out.Reset()
	code = Run(context.Background(), []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "../tasks/nvr-format/runtask.yml"}, cfg, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "1 results kept in "+cfg.Reporter.Spool) {
		t.Fatalf("spooled: exit %d\n%s", code, out.String())
	}
}

// TestRuntaskReportsOnlyWhenAsked: without resultsdb.url a task author's run
// reports nothing and says so in one line, at once; --report sends the
// results to the local ResultsDB at resultsdb.listen; --no-report never.
func TestRuntaskReportsOnlyWhenAsked(t *testing.T) {
	url := startResultsDB(t)
	client, err := reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.URL = ""
	cfg.ResultsDB.Listen = strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/api/v2.0")
	cfg.Reporter.Spool = filepath.Join(t.TempDir(), "spool")
	run := func(uuid string, extra ...string) (int, string) {
		var out, errb bytes.Buffer
		args := append([]string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", uuid}, extra...)
		code := Run(context.Background(), append(args, "../tasks/nvr-format"), cfg, nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	stored := func(uuid string) int {
		rs, err := client.GroupResults(context.Background(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}

	code, out := run("rt-quiet")
	if code != 0 || strings.Count(out, "results not reported: resultsdb.url is not set") != 1 || strings.Contains(out, "stored") {
		t.Fatalf("no url: exit %d\n%s", code, out)
	}
	if n := stored("rt-quiet"); n != 0 {
		t.Fatalf("no url: %d results stored", n)
	}
	if ents, _ := os.ReadDir(cfg.Reporter.Spool); len(ents) != 0 {
		t.Fatalf("no url: results spooled: %v", ents)
	}

	code, out = run("rt-no", "--no-report")
	if code != 0 || !strings.Contains(out, "results not reported (--no-report)") || stored("rt-no") != 0 {
		t.Fatalf("--no-report: exit %d\n%s", code, out)
	}

	code, out = run("rt-asked", "--report")
	if code != 0 || !strings.Contains(out, "results stored in ResultsDB") || stored("rt-asked") != 1 {
		t.Fatalf("--report: exit %d\n%s", code, out)
	}

	if code, out := run("rt-both", "--report", "--no-report"); code != 2 || !strings.Contains(out, "contradict") {
		t.Fatalf("--report --no-report: exit %d\n%s", code, out)
	}
}

// TestRuntaskSaysThingsOnce: without -d the terminal gets the formula's
// warnings and the reason a run failed once, not again from the log.
func TestRuntaskSaysThingsOnce(t *testing.T) {
	dir := t.TempDir()
	formula := filepath.Join(dir, "runtask.yml")
	os.WriteFile(formula, []byte("name: x\ndesc: d\nmaintainer: m\nfrob: 1\nactions:\n  - name: boom\n    dummy: {result: FAIL, msg: kaboom}\n"), 0o644)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	var out, errb bytes.Buffer
	log := slog.New(slog.NewTextHandler(&errb, nil))
	code := Run(context.Background(), []string{"-i", "a-1-1", "-t", "koji_build", "--no-report", formula}, cfg, log, &out, &errb)
	all := out.String() + errb.String()
	if code != 1 || strings.Count(all, `unknown key \"frob\"`)+strings.Count(all, `unknown key "frob"`) != 1 || strings.Count(errb.String(), "kaboom") != 0 || !strings.Contains(out.String(), "execution NOT_OK") || !strings.Contains(out.String(), "kaboom") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}

func startResultsDB(t *testing.T) string { return resultsdbtest.Start(t) + "/api/v2.0" }

// A task whose TAP13 file holds more results than a run keeps in memory is
// run and reported as production does: every result reaches a real
// ResultsDB over its API, once, even when reported twice.
func TestRuntaskReportsManyResultsFromAFile(t *testing.T) {
	url := startResultsDB(t)
	taskDir := t.TempDir()
	n := directives.MemoryResults + 25
	var tap strings.Builder
	fmt.Fprintf(&tap, "TAP version 13\n1..%d\n", n)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&tap, "ok %d - check %d\n", i, i)
	}
	os.WriteFile(filepath.Join(taskDir, "out.tap"), []byte(tap.String()), 0o644)
	os.WriteFile(filepath.Join(taskDir, "runtask.yml"), []byte("name: many\nactions:\n  - resultsdb:\n      file: out.tap\n"), 0o644)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.URL = url
	for try := range 2 {
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", "rt-many", taskDir}, cfg, nil, &out, &errb)
		if code != 0 || !strings.Contains(out.String(), fmt.Sprintf("results stored in ResultsDB at %s (%d)", url, n)) ||
			!strings.Contains(out.String(), fmt.Sprintf("%d results, too many to print", n)) {
			t.Fatalf("run %d: exit %d\n%s\n%s", try+1, code, out.String(), errb.String())
		}
	}
	client, err := reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := client.GroupResults(context.Background(), "rt-many")
	if err != nil || len(rs) != n {
		t.Fatalf("ResultsDB holds %d results of the group (%v); want %d", len(rs), err, n)
	}
}
