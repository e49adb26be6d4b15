package pipeline

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/labs"
)

// TestRulesWithWhereQueueRequestsForTheLabs: a rule whose action says
// where: makes a request on the central server's queue for the labs,
// with the labels; the other rules' jobs run on the workers as ever.
func TestRulesWithWhereQueueRequestsForTheLabs(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	os.WriteFile(rules, []byte("- when: {message_type: KojiBuildPackageCompleted}\n  do:\n    - {tasks: [nvr-format], where: {board: beaglebone-black}}\n    - {tasks: [nvr-format]}\n"), 0o644)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.ResultsDB.Listen = "127.0.0.1:0"
	cfg.Trigger.Rules = rules
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	drained := make(chan *Summary, 1)
	opts := Options{Config: cfg, Messages: []string{corpus + "koji-build-state-change__11.json"}, TasksDir: "../tasks",
		Drained: func(s *Summary) { drained <- s }}
	base, done := startUp(t, ctx, opts)
	defer func() { cancel(); <-done }()
	var s *Summary
	select {
	case s = <-drained:
	case <-ctx.Done():
		t.Fatal("up did not drain its queue")
	}
	if len(s.Messages) != 1 || len(s.Messages[0].Jobs) != 2 {
		t.Fatalf("summary: %+v", s)
	}
	c, err := labs.NewClient(base, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.List(ctx, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 1 || l.Data[0].TaskName != "nvr-format" || l.Data[0].Where["board"] != "beaglebone-black" {
		t.Fatalf("the labs' queue holds %+v; want the one nvr-format request for board=beaglebone-black", l.Data)
	}
}
