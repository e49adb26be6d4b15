package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/trigger"
)

func result(id int64, outcome, testcase, item, typ, arch string, groups ...string) stored {
	s := stored{ID: id, Outcome: outcome, Groups: groups, Data: map[string][]string{"item": {item}, "type": {typ}, "arch": {arch}}}
	s.Testcase.Name = testcase
	return s
}

// count tells a job with one result set from a missing one, a doubled
// result, a second result set and results nobody expected.
func TestCount(t *testing.T) {
	ok := jobKey{"nvr-format", "a-1-1.fc40", "koji_build", "x86_64"}
	missing := jobKey{"rpmlint", "a-1-1.fc40", "koji_build", "x86_64"}
	doubled := jobKey{"python-versions", "a-1-1.fc40", "koji_build", "noarch"}
	twoSets := jobKey{"nvr-format", "FEDORA-2024-abc123", "bodhi_update", "x86_64"}
	tag := jobKey{"upgradepath", "f31-updates-pending", "koji_tag", "noarch"}
	expected := map[jobKey]int{ok: 1, missing: 1, doubled: 1, twoSets: 1, tag: 3}
	results := []stored{
		result(1, "PASSED", "dist.nvr-format", ok.Item, ok.Type, ok.Arch, "u1"),
		// A job that reported, died before its ack, and ended CRASHED.
		result(2, "PASSED", "scratch.python-versions", doubled.Item, doubled.Type, doubled.Arch, "u2"),
		result(3, "CRASHED", "python-versions", doubled.Item, doubled.Type, doubled.Arch, "u2"),
		// One job run under two uuids.
		result(4, "PASSED", "dist.nvr-format", twoSets.Item, twoSets.Type, twoSets.Arch, "u3"),
		result(5, "PASSED", "dist.nvr-format", twoSets.Item, twoSets.Type, twoSets.Arch, "u4"),
		// Three tag events of one tag, two of them with results.
		result(6, "PASSED", "scratch.upgradepath", tag.Item, tag.Type, tag.Arch, "u5"),
		result(7, "PASSED", "scratch.upgradepath", tag.Item, tag.Type, tag.Arch, "u6"),
		result(8, "PASSED", "scratch.rpmlint", "b-1-1.fc40", "koji_build", "x86_64", "u7"),
	}
	got := count(expected, results)
	want := tally{Expected: 7, OneSet: 3, Missing: 2, Duplicated: 2, Unexpected: 1}
	if got.Expected != want.Expected || got.OneSet != want.OneSet || got.Missing != want.Missing || got.Duplicated != want.Duplicated || got.Unexpected != want.Unexpected {
		t.Fatalf("count = expected %d, one set %d, missing %d, duplicated %d, unexpected %d; want %+v", got.Expected, got.OneSet, got.Missing, got.Duplicated, got.Unexpected, want)
	}
	if got.Outcomes["PASSED"] != 7 || got.Outcomes["CRASHED"] != 1 {
		t.Errorf("outcomes %v", got.Outcomes)
	}
	all := strings.Join(append(append(got.MissingJobs, got.DuplicatedJobs...), got.UnexpectedJobs...), "\n")
	for _, want := range []string{"rpmlint on koji_build a-1-1.fc40 (x86_64): 1 of 1 jobs without results", "upgradepath on koji_tag f31-updates-pending (noarch): 1 of 3",
		"u2: PASSED,CRASHED", "u3: PASSED", "u4: PASSED", "b-1-1.fc40"} {
		if !strings.Contains(all, want) {
			t.Errorf("the report does not say %q:\n%s", want, all)
		}
	}
}

func testRoot(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// The stream the soak sends makes every job it expects through the
// trigger itself, dedup included (no two messages fold into one), and the
// trigger sets every malformed message aside.
func TestStreamThroughTheTrigger(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)
	env := []string{"TASKOTRON_DATA_DIR=" + t.TempDir()}
	exp, err := newExpecter(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	templates, err := loadTemplates([]string{filepath.Join(root, "testdata", "messages"), filepath.Join(root, "fixtures", "messages")}, exp.tr)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := buildStream(templates, exp, 300, 8, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if len(stream) != 308 {
		t.Fatalf("%d messages, want 308", len(stream))
	}
	store, err := trigger.OpenDedup(ctx, "sqlite:"+filepath.Join(t.TempDir(), "state.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tr := trigger.New(trigger.Options{Dedup: store})
	made, malformed, kinds := 0, 0, map[string]bool{}
	ids := map[string]bool{}
	for _, o := range stream {
		if ids[o.ID] {
			t.Fatalf("message id %s twice", o.ID)
		}
		ids[o.ID] = true
		var body map[string]any
		if err := json.Unmarshal(o.Body, &body); err != nil || body == nil {
			if o.Malformed == "" {
				t.Fatalf("real-shaped message from %s is not a JSON object: %v", o.Template, err)
			}
			malformed++ // the AMQP source sets it aside (bus.decodeAMQP)
			kinds[o.Malformed] = true
			continue
		}
		jobs, err := tr.Handle(ctx, contract.Message{ID: o.ID, Topic: o.Topic, Body: body})
		if o.Malformed != "" {
			if !errors.Is(err, trigger.ErrMalformed) {
				t.Fatalf("malformed message (%s): Handle = %v, want ErrMalformed", o.Malformed, err)
			}
			malformed++
			kinds[o.Malformed] = true
			continue
		}
		if err != nil && !errors.Is(err, trigger.ErrIgnored) {
			t.Fatalf("message from %s: %v", o.Template, err)
		}
		if len(jobs) != len(o.Jobs) {
			t.Fatalf("message from %s made %d jobs through the trigger, the soak expects %d", o.Template, len(jobs), len(o.Jobs))
		}
		made += len(jobs)
		if err := tr.Commit(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
	}
	if made != sum(expectedJobs(stream)) || made < 200 {
		t.Fatalf("the trigger made %d jobs, the soak expects %d", made, sum(expectedJobs(stream)))
	}
	if malformed != 8 || len(kinds) != len(malformedKinds) {
		t.Fatalf("%d malformed messages of kinds %v, want 8 of %v", malformed, kinds, malformedKinds)
	}
	for _, o := range stream {
		if o.Malformed == "5 MiB name" && len(o.Body) < 5<<20 {
			t.Fatalf("the 5 MiB name message is %d bytes", len(o.Body))
		}
	}
}

// TestChaosSoakBrokerRestart is the small soak `make test` runs (in its
// second phase, alone, as it restarts RabbitMQ): the roles as processes
// under worker SIGKILLs, a trigger SIGKILL, one broker restart, ResultsDB
// SIGSTOPped and SIGKILLed, and malformed messages; nothing is lost or doubled and every
// malformed message is dead-lettered with its reason.
func TestChaosSoakBrokerRestart(t *testing.T) {
	cfg := Config{
		Root:           testRoot(t),
		Dir:            t.TempDir(),
		AMQPURL:        envOr("TASKOTRON_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"),
		PostgresURL:    envOr("RESULTSDB_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"),
		Messages:       48,
		Malformed:      4,
		Duration:       24 * time.Second,
		Workers:        2,
		Concurrency:    2,
		TaskTime:       time.Second,
		KillEvery:      5 * time.Second,
		BrokerRestarts: 1,
		BrokerDown:     2 * time.Second,
		ResultsDBStops: 2,
		ResultsDBDown:  3 * time.Second,
		TriggerKills:   1,
		DrainTimeout:   3 * time.Minute,
		Log:            slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	rep, err := Run(t.Context(), cfg)
	var table strings.Builder
	if rep != nil {
		rep.Table(&table)
		t.Logf("\n%s", table.String())
	}
	if err != nil {
		t.Fatalf("the soak could not run: %v", err)
	}
	if f := rep.Failures(); len(f) > 0 {
		keepLogs(t, rep.Dir)
		t.Fatalf("the soak found:\n%s", strings.Join(f, "\n"))
	}
	if rep.WorkerKills == 0 || rep.TriggerKills != 1 || len(rep.BrokerOutages) != 1 || len(rep.ResultsDBPauses) != 1 || len(rep.ResultsDBKills) != 1 {
		t.Fatalf("not every fault happened: %d worker kills, %d trigger kills, broker %v, ResultsDB paused %v, killed %v",
			rep.WorkerKills, rep.TriggerKills, rep.BrokerOutages, rep.ResultsDBPauses, rep.ResultsDBKills)
	}
}

// keepLogs copies the roles' logs out of the test's temporary folder.
func keepLogs(t *testing.T, dir string) {
	keep, err := os.MkdirTemp("", "taskotron-chaos-failed-")
	if err != nil {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		if raw, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(keep, filepath.Base(l)), raw, 0o644)
		}
	}
	t.Logf("the roles' logs are kept in %s", keep)
}

// latencies take each job's first result, from ResultsDB's submit_time.
func TestLatencies(t *testing.T) {
	a := jobKey{"nvr-format", "a-1-1.fc40", "koji_build", "x86_64"}
	b := jobKey{"rpmlint", "a-1-1.fc40", "koji_build", "x86_64"}
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ra := result(1, "PASSED", "dist.nvr-format", a.Item, a.Type, a.Arch, "u1")
	ra.SubmitTime = "2026-01-02T03:04:07.500000"
	ra2 := ra
	ra2.SubmitTime = "2026-01-02T03:04:09"
	rb := result(2, "PASSED", "scratch.rpmlint", b.Item, b.Type, b.Arch, "u2")
	rb.SubmitTime = "2026-01-02T03:04:06.250000"
	got := latencies([]stored{ra2, ra, rb}, map[jobKey]time.Time{a: sent, b: sent})
	if len(got) != 2 || got[0] != 1250*time.Millisecond || got[1] != 2500*time.Millisecond {
		t.Fatalf("latencies %v, want [1.25s 2.5s]", got)
	}
	if q := quantile(got, 0.5); q != 2500*time.Millisecond {
		t.Fatalf("median %v", q)
	}
}
