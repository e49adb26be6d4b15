package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"taskotron/config"
	"taskotron/reporter"
)

func TestRuntaskReportsToResultsDB(t *testing.T) {
	url := startResultsDB(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.URL = url
	var out, errb bytes.Buffer
	code := Runtask(context.Background(), []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "--uuid", "rt-1", "../tasks/nvr-format"}, cfg, nil, &out, &errb)
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
	code = Runtask(context.Background(), []string{"-i", "xchat-0.5-1.fc20", "-t", "koji_build", "../tasks/nvr-format/runtask.yml"}, cfg, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "1 results kept in "+cfg.Reporter.Spool) {
		t.Fatalf("spooled: exit %d\n%s", code, out.String())
	}
}
