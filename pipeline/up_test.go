package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/trigger"
)

const corpus = "../testdata/messages/"

func upOnce(t *testing.T, messages ...string) *Summary {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	cfg.Runner.Concurrency = 2
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var browse string
	s, err := Up(ctx, Options{
		Config:   cfg,
		Messages: messages,
		TasksDir: "../tasks",
		Fixtures: "../fixtures",
		Once:     true,
		Ready:    func(u string) { browse = u },
	})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if browse == "" || s.URL != browse {
		t.Fatalf("browse URL %q, summary URL %q", browse, s.URL)
	}
	return s
}

// apiResult is a result as ResultsDB API v2.0 serialises it.
type apiResult struct {
	Outcome  string                `json:"outcome"`
	Testcase struct{ Name string } `json:"testcase"`
	Data     map[string][]string   `json:"data"`
	Groups   []string              `json:"groups"`
	Note     string                `json:"note"`
	RefURL   string                `json:"ref_url"`
}

func query(t *testing.T, base string, params url.Values) []apiResult {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(base, "/") + "/api/v2.0/results?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET results: %s", resp.Status)
	}
	var page struct{ Data []apiResult }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Data
}

// A Koji build message from the corpus goes all the way to a result that
// QA reads back through the ResultsDB API.
func TestKojiBuildMessageEndsAsAResultInResultsDB(t *testing.T) {
	// Up stops serving when it returns: it runs without Once in the
	// background, and the test queries the API it serves until the result
	// is there, then stops it.
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base, done := startUp(t, ctx, Options{Config: cfg, Messages: []string{corpus + "koji-build-state-change__11.json"},
		TasksDir: "../tasks", Fixtures: "../fixtures"})
	item := "chromium-80.0.3987.132-1.fc33"
	var got []apiResult
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got = query(t, base, url.Values{"item": {item}, "type": {"koji_build"}, "testcases": {"dist.nvr-format"}})
		if len(got) > 0 {
			break
		}
	}
	cancel()
	<-done
	if len(got) != 1 {
		t.Fatalf("results for %s: %+v", item, got)
	}
	r := got[0]
	if r.Outcome != "PASSED" || r.Testcase.Name != "dist.nvr-format" {
		t.Errorf("outcome %s testcase %s", r.Outcome, r.Testcase.Name)
	}
	if strings.Join(r.Data["item"], ",") != item || strings.Join(r.Data["type"], ",") != "koji_build" {
		t.Errorf("data %v", r.Data)
	}
	if len(r.Groups) != 1 {
		t.Errorf("groups %v, want the execution's uuid", r.Groups)
	}
}

func TestUpOnceSummarisesEveryMessage(t *testing.T) {
	s := upOnce(t,
		corpus+"koji-build-state-change__11.json", // COMPLETE: jobs
		corpus+"koji-build-state-change__2.json",  // BUILDING: ignored
		corpus+"bodhi-update-ready-for-testing__6.json",
	)
	if len(s.Messages) != 3 {
		t.Fatalf("messages %+v", s.Messages)
	}
	byOrigin := map[string]MessageSummary{}
	for _, m := range s.Messages {
		byOrigin[filepath.Base(m.Origin)] = m
	}
	built := byOrigin["koji-build-state-change__11.json"]
	if built.Status != trigger.OutcomeJobs || len(built.Jobs) == 0 {
		t.Fatalf("completed build: %+v", built)
	}
	var nvr *JobSummary
	for i, j := range built.Jobs {
		if j.TaskName == "nvr-format" {
			nvr = &built.Jobs[i]
		}
	}
	if nvr == nil || nvr.Outcome != contract.Passed || nvr.Status != contract.ExecutionOK {
		t.Errorf("nvr-format job: %+v", nvr)
	}
	if m := byOrigin["koji-build-state-change__2.json"]; m.Status != trigger.OutcomeIgnored || len(m.Jobs) != 0 {
		t.Errorf("started build: %+v", m)
	}
	bodhi := byOrigin["bodhi-update-ready-for-testing__6.json"]
	if len(bodhi.Jobs) == 0 || bodhi.Jobs[0].ItemType != "bodhi_update" || bodhi.Jobs[0].Item != "FEDORA-2024-32f9547504" {
		t.Errorf("bodhi update: %+v", bodhi)
	}
	for _, m := range s.Messages {
		for _, j := range m.Jobs {
			if j.Status == "PENDING" {
				t.Errorf("job %s %s never ended", j.TaskName, j.Item)
			}
		}
	}
}

// make run uses the default, relative data_dir (.taskotron): every role must
// find the same folders, the mirror `taskotron mirror` built among them.
func TestUpWithTheDefaultRelativeDataDir(t *testing.T) {
	tasks, err := filepath.Abs("../tasks")
	if err != nil {
		t.Fatal(err)
	}
	fixtures, _ := filepath.Abs("../fixtures")
	msg, _ := filepath.Abs("../fixtures/messages/koji-build-state-change__6.json")
	t.Chdir(t.TempDir())
	cfg := config.Default() // data_dir: .taskotron
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	if err := checkout.Seed(tasks, cfg.Path("mirror")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Up(ctx, Options{Config: cfg, Messages: []string{msg}, Fixtures: fixtures, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Messages {
		for _, j := range m.Jobs {
			if j.Outcome != contract.Passed {
				t.Errorf("%s on %s: %s %+v", j.TaskName, j.Item, j.Outcome, j.Outcomes)
			}
		}
	}
	if len(s.Messages) != 1 || len(s.Messages[0].Jobs) == 0 {
		t.Fatalf("summary %+v", s)
	}
}

// startUp runs Up until ctx ends and returns the URL to browse once it is
// ready. A start that fails, or takes longer than a minute, fails the test
// with the reason instead of leaving it waiting for the global timeout.
func startUp(t *testing.T, ctx context.Context, opts Options) (base string, done <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	finished := make(chan error, 1)
	opts.Ready = func(u string) { ready <- u }
	go func() {
		_, err := Up(ctx, opts)
		if err != nil && ctx.Err() == nil {
			t.Errorf("up: %v", err)
		}
		finished <- err
	}()
	select {
	case base = <-ready:
		return base, finished
	case err := <-finished:
		t.Fatalf("up ended before it was ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("up was not ready after a minute")
	}
	return "", nil
}
