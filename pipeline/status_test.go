package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/status"
)

// While a task runs, `up` shows it in /status on its results port, and
// /metrics counts it.
func TestUpServesStatusAndMetricsWhileATaskRuns(t *testing.T) {
	tmp := t.TempDir()
	stop := filepath.Join(tmp, "stop")
	// Every task the message triggers waits for the test to let it end.
	tasks := filepath.Join(tmp, "tasks")
	formula := "name: NAME\nnamespace: dist\ndesc: waits\nmaintainer: test\ninput:\n  args: [koji_build]\nactions:\n" +
		"  - name: wait for the test\n    shell:\n      - \"sh -c 'while [ ! -e " + stop + " ]; do sleep 0.1; done'\"\n"
	for _, name := range []string{"nvr-format", "rpmlint", "python-versions", "upgradepath"} {
		os.MkdirAll(filepath.Join(tasks, name), 0o755)
		os.WriteFile(filepath.Join(tasks, name, "runtask.yml"), []byte(strings.ReplaceAll(formula, "NAME", name)), 0o644)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(tmp, "data")
	cfg.Runner.Mirror = filepath.Join(tmp, "mirror")
	if err := checkout.Seed(tasks, cfg.Runner.Mirror); err != nil {
		t.Fatal(err)
	}
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	cfg.Runner.Concurrency = 1
	// Unsandboxed: the tasks wait for a file of the test's, which no
	// sandbox shows.
	cfg.Runner.Sandbox = "off"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ready, done := startUp(t, ctx, Options{Config: cfg, Messages: []string{corpus + "koji-build-state-change__11.json"}, Fixtures: "../fixtures"})
	defer func() { os.WriteFile(stop, nil, 0o644); cancel(); <-done }()
	base := strings.TrimSuffix(ready, "/")

	type doc struct {
		Role  string
		Parts struct {
			Worker struct {
				Running []struct {
					UUID, Task, Item, Arch, State, Action string
					Attempt                               int
					Started                               time.Time
				}
			}
		}
	}
	var d doc
	var body string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(base + "/status")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		d = doc{}
		json.Unmarshal(b, &d)
		if len(d.Parts.Worker.Running) > 0 && d.Parts.Worker.Running[0].Action != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running job with its action in /status:\n%s", body)
		}
	}
	j := d.Parts.Worker.Running[0]
	if d.Role != "up" || j.UUID == "" || j.Item != "chromium-80.0.3987.132-1.fc33" || j.Attempt != 1 || j.State != "running" ||
		j.Action != "wait for the test" || j.Started.IsZero() || j.Arch == "" {
		t.Errorf("running job: %+v\n%s", j, body)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := status.ParseText(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	if m["taskotron_worker_jobs_running"] != 1 || m[`taskotron_trigger_messages_total{outcome="jobs"}`] != 1 || m["taskotron_trigger_jobs_queued_total"] < 1 {
		t.Errorf("metrics: %v", m)
	}
	if m[`taskotron_queue_jobs{state="taken"}`] != 1 {
		t.Errorf("disk queue: %v", m)
	}
}
