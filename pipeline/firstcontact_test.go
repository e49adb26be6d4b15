package pipeline

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// expectedDemo is what `make run` shows for fixtures/messages with the
// tools of scripts/env.sh installed: message file -> "task item" -> outcome
// of the job (the worst of its results). Nothing is ABORTED or CRASHED.
var expectedDemo = map[string]map[string]contract.Outcome{
	"bodhi-update-ready-for-testing__6.json": {"nvr-format FEDORA-2024-32f9547504": contract.Passed},
	"bodhi-update-request-testing__4.json":   {"nvr-format FEDORA-2019-f1ca3c00e5": contract.Passed},
	"koji-build-state-change__11.json": {
		"nvr-format chromium-80.0.3987.132-1.fc33":      contract.Passed,
		"rpmlint chromium-80.0.3987.132-1.fc33":         contract.Failed, // 1 error in the fixture RPMs
		"python-versions chromium-80.0.3987.132-1.fc33": contract.Passed,
	},
	"koji-build-state-change__2.json": {},
	"koji-build-state-change__4.json": {},
	"koji-build-state-change__6.json": {
		"nvr-format packit-0.43.0-1.fc36":      contract.Passed,
		"rpmlint packit-0.43.0-1.fc36":         contract.Passed,
		"python-versions packit-0.43.0-1.fc36": contract.Passed,
	},
	"koji-tag__3.json": {"upgradepath f31-updates-pending": contract.Passed},
}

// checkDemo compares a summary of every fixture message with expectedDemo.
func checkDemo(t *testing.T, s *Summary) {
	t.Helper()
	if len(s.Messages) != len(expectedDemo) {
		t.Errorf("%d messages, want %d: %+v", len(s.Messages), len(expectedDemo), s.Messages)
	}
	for _, m := range s.Messages {
		want, ok := expectedDemo[filepath.Base(m.Origin)]
		if !ok {
			t.Errorf("unexpected message %s", m.Origin)
			continue
		}
		got := map[string]contract.Outcome{}
		for _, j := range m.Jobs {
			got[j.TaskName+" "+j.Item] = j.Outcome
			if j.Outcome == contract.Aborted || j.Outcome == contract.Crashed || j.Status != contract.ExecutionOK {
				t.Errorf("%s: %s on %s ended %s %s: %+v", filepath.Base(m.Origin), j.TaskName, j.Item, j.Status, j.Outcome, j.Outcomes)
			}
		}
		for k, o := range want {
			if got[k] != o {
				t.Errorf("%s: %s: %q, want %s", filepath.Base(m.Origin), k, got[k], o)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: jobs %v, want %v", filepath.Base(m.Origin), got, want)
		}
	}
}

// The demo from a clean data folder: every fixture message, the real tasks
// with the tools scripts/env.sh installs, real rpmlint, python-versions and
// upgradepath results.
func TestDemoFromACleanStateShowsRealResults(t *testing.T) {
	s := upOnce(t, "../fixtures/messages")
	checkDemo(t, s)
}

// A port already taken (another `up`, anything) is no reason to stop: up
// listens on a free one and tells its URL.
func TestUpPicksAFreePortWhenResultsDBListenIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ResultsDB.Listen = taken.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var browse string
	var status int
	s, err := Up(ctx, Options{
		Config: cfg, Messages: []string{"../fixtures/messages/koji-build-state-change__2.json"},
		TasksDir: "../tasks", Fixtures: "../fixtures", Once: true,
		Ready: func(u string) {
			browse = u
			if resp, err := http.Get(u + "api/v2.0/results"); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
		},
	})
	if err != nil {
		t.Fatalf("up with %s taken: %v", cfg.ResultsDB.Listen, err)
	}
	if !strings.HasPrefix(browse, "http://127.0.0.1:") || strings.Contains(browse, taken.Addr().String()) || s.URL != browse {
		t.Fatalf("browse URL %q (summary %q), want another port than the taken %s", browse, s.URL, taken.Addr())
	}
	if status != 200 {
		t.Errorf("GET %sapi/v2.0/results: status %d", browse, status)
	}
}
