package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/pipeline"
)

func TestUpOnceJSONFromTheCommandLine(t *testing.T) {
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir(), "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0"}
	code, stdout, stderr := runCLI(t, env, "--log-level", "warn", "up", "--once", "--json",
		"--tasks", "../../tasks", "--fakes", "../../fixtures",
		"../../fixtures/messages/koji-build-state-change__6.json",
		"../../fixtures/messages/koji-build-state-change__2.json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	var s pipeline.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout)
	}
	if len(s.Messages) != 2 || !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("summary %+v", s)
	}
	outcomes := map[string]string{}
	for _, m := range s.Messages {
		for _, j := range m.Jobs {
			outcomes[j.TaskName] = string(j.Outcome)
		}
	}
	if outcomes["nvr-format"] != "PASSED" || outcomes["rpmlint"] != "PASSED" {
		t.Errorf("outcomes by task: %v", outcomes)
	}
}

func TestUpRejectsAnUnknownFlag(t *testing.T) {
	code, _, stderr := runCLI(t, nil, "up", "--onse")
	if code != 2 || !strings.Contains(stderr, "onse") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
