package fakes_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/pipeline"
)

// corpus holds real bus messages from the shared corpus, copied unchanged
// into the repository so the test runs wherever the repository is.
const corpus = "../fixtures/messages/"

type dbResult struct {
	Outcome  string                `json:"outcome"`
	Testcase struct{ Name string } `json:"testcase"`
	Data     map[string][]string   `json:"data"`
	Note     string                `json:"note"`
	RefURL   string                `json:"ref_url"`
}

func queryResults(t *testing.T, base string, params url.Values) []dbResult {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(base, "/") + "/api/v2.0/results?" + params.Encode())
	if err != nil {
		t.Fatalf("ResultsDB at %s: %v", base, err)
	}
	defer resp.Body.Close()
	var page struct{ Data []dbResult }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&page) != nil {
		t.Fatalf("GET results: %s", resp.Status)
	}
	return page.Data
}

// Corpus messages (a Koji build of packit, one of chromium, and http-parser
// tagged into f31-updates-pending) go through the whole pipeline — trigger,
// queue, runner with the real tasks against the doubles, reporter — and
// come out as results QA reads back from ResultsDB.
func TestCorpusMessagesToResultsDB(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ready := make(chan string, 1)
	drained := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Up(ctx, pipeline.Options{
			Config: cfg,
			Messages: []string{
				corpus + "koji-build-state-change__6.json",
				corpus + "koji-build-state-change__11.json",
				corpus + "koji-tag__3.json",
			},
			TasksDir: "../tasks", Fixtures: "../fixtures",
			Ready:   func(u string) { ready <- u },
			Drained: func(*pipeline.Summary) { drained <- struct{}{} },
		})
		done <- err
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("up ended before serving: %v", err)
	}
	select {
	case <-drained:
	case <-ctx.Done():
		t.Fatal("the pipeline did not drain in time")
	}
	defer func() { cancel(); <-done }()

	for _, c := range []struct {
		item, testcase, outcome, note string
	}{
		{"chromium-80.0.3987.132-1.fc33", "dist.rpmlint", "FAILED", "errors, "},
		{"packit-0.43.0-1.fc36", "dist.rpmlint", "PASSED", "0 errors, "},
		{"packit-0.43.0-1.fc36", "dist.python-versions.two_three", "PASSED", "no RPM requires both"},
		{"http-parser-2.9.3-1.fc31", "dist.upgradepath", "PASSED", "keeps the upgrade path"},
	} {
		got := queryResults(t, base, url.Values{"item": {c.item}, "testcases": {c.testcase}})
		if len(got) != 1 {
			t.Errorf("%s %s: %d results in ResultsDB, want 1: %+v", c.testcase, c.item, len(got), got)
			continue
		}
		r := got[0]
		if r.Outcome != c.outcome || !strings.Contains(r.Note, c.note) {
			t.Errorf("%s %s: %s %q, want %s with %q", c.testcase, c.item, r.Outcome, r.Note, c.outcome, c.note)
		}
		if c.testcase == "dist.rpmlint" {
			if strings.Join(r.Data["arch"], ",") == "" || !strings.HasSuffix(r.RefURL, c.item+".log") {
				t.Errorf("rpmlint result must carry its arches and link its log: data %v ref_url %q", r.Data, r.RefURL)
			}
		}
	}
}
