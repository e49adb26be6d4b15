package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
	"github.com/taskotron-go/taskotron/runner"
)

// stack is a real pipeline tail: a task mirror seeded from folders, a
// runner, an on-disk job queue, and a ResultsDB server on SQLite behind a
// reporter with its spool.
type stack struct {
	cfg      config.Config
	runner   *runner.Runner
	co       *checkout.Checkout
	queue    *bus.DiskQueue
	reporter *reporter.Reporter
	client   *reporter.ResultsDBClient
	tasks    string
	mirror   string
	url      string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	s := &stack{tasks: filepath.Join(dir, "tasks"), mirror: filepath.Join(dir, "mirror")}
	// The example task, plus test tasks added by addTask.
	copyDir(t, "../tasks/nvr-format", filepath.Join(s.tasks, "nvr-format"))
	s.seed(t)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	s.cfg = cfg
	co, err := checkout.New(checkout.Options{Mirrors: []string{s.mirror}, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	s.co = co
	s.runner = runner.New(runner.Options{Config: cfg, Checkout: co})
	s.queue, err = bus.OpenDiskQueue(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	url := startResultsDB(t)
	s.url = url
	s.reporter, err = reporter.New(reporter.Options{ResultsDBURL: url, SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	s.client, err = reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kojiAt points the runner at a Koji hub, with no retries.
func (s *stack) kojiAt(url string) {
	s.cfg.Koji.URL, s.cfg.Koji.Retries = url, 0
	s.runner = runner.New(runner.Options{Config: s.cfg, Checkout: s.co})
}

func (s *stack) seed(t *testing.T) {
	t.Helper()
	if err := checkout.Seed(s.tasks, s.mirror); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) addTask(t *testing.T, name, formula string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(s.tasks, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tasks, name, "runtask.yml"), []byte(formula), 0o644); err != nil {
		t.Fatal(err)
	}
	s.seed(t)
}

func (s *stack) stored(t *testing.T, uuid string) []reporter.StoredResult {
	t.Helper()
	rs, err := s.client.GroupResults(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func startResultsDB(t *testing.T) string { return resultsdbtest.Start(t) + "/api/v2.0" }

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func job(uuid, task, item string) contract.Job {
	return contract.Job{UUID: uuid, TaskName: task, Item: item, ItemType: "koji_build", Arch: "x86_64", Created: time.Now().UTC()}
}

func TestWorkerRunsAndReportsUntilDrained(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	jobs := []contract.Job{job("w-1", "nvr-format", "xchat-0.5-1.fc20"), job("w-2", "nvr-format", "broken"), job("w-3", "nvr-format", "foo-1.0-1.fc40; touch /tmp/pwned $(id)")}
	if err := s.queue.Publish(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	var mu sync.Mutex
	done := map[string]contract.Execution{}
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Concurrency: 2, OnDone: func(j contract.Job, e contract.Execution) {
		mu.Lock()
		done[j.UUID] = e
		mu.Unlock()
	}})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 {
		t.Fatalf("done: %v", done)
	}
	want := map[string]string{"w-1": "PASSED", "w-2": "FAILED", "w-3": "FAILED"}
	for uuid, outcome := range want {
		rs := s.stored(t, uuid)
		if len(rs) != 1 || rs[0].Outcome != outcome || rs[0].Testcase != "dist.nvr-format" {
			t.Errorf("%s: stored %+v, want one %s", uuid, rs, outcome)
		}
	}
	if p, f := s.queue.Len(); p != 0 || f != 0 {
		t.Fatalf("queue not empty: %d pending, %d in flight", p, f)
	}
	if _, err := os.Stat("/tmp/pwned"); !os.IsNotExist(err) {
		t.Fatal("/tmp/pwned exists")
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	j := job("w-crash", "nvr-format", "xchat-0.5-1.fc20")
	j.Attempt = 3 // three deliveries never finished; the queue counts this one as the fourth
	if err := s.queue.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, MaxAttempts: 3})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	rs := s.stored(t, "w-crash")
	if len(rs) != 1 || rs[0].Outcome != "CRASHED" || !strings.Contains(rs[0].Note, "gave up after 3 attempts") || rs[0].Testcase != "nvr-format" {
		t.Fatalf("stored: %+v", rs)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Runner.ArtifactsDir, "w-crash")); !os.IsNotExist(err) {
		t.Fatal("the job ran although it had no attempts left")
	}
}

func TestWorkerRetriesInfrastructureFailures(t *testing.T) {
	// With 2 slots the next attempt can be taken while the last one is
	// still finishing: it must not pass for a duplicate.
	for _, conc := range []int{1, 2} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) { testWorkerRetries(t, conc) })
	}
}

func testWorkerRetries(t *testing.T, concurrency int) {
	s := newStack(t)
	// A lost job would leave the worker waiting for it forever.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Koji does not answer: the infrastructure failed, not the package.
	s.kojiAt("http://127.0.0.1:1/kojihub")
	s.addTask(t, "download", "name: download\nactions:\n  - koji: {action: download, koji_build: '${koji_build}', arch: [x86_64], target_dir: '${workdir}'}\n")
	if err := s.queue.Publish(ctx, job("w-infra", "download", "xchat-0.5-1.fc20")); err != nil {
		t.Fatal(err)
	}
	var runs []int
	var mu sync.Mutex
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, MaxAttempts: 3, RetryWait: 10 * time.Millisecond, Concurrency: concurrency,
		OnDone: func(j contract.Job, e contract.Execution) {
			mu.Lock()
			runs = append(runs, j.Attempt)
			mu.Unlock()
			s.queue.Seal()
		}})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0] != 3 {
		t.Fatalf("reported after attempts %v, want once after attempt 3", runs)
	}
	rs := s.stored(t, "w-infra")
	if len(rs) != 1 || rs[0].Outcome != "ABORTED" || !strings.Contains(rs[0].Note, "127.0.0.1:1") {
		t.Fatalf("stored: %+v", rs)
	}
}

func TestWorkerDoesNotRetryAMissingTask(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	if err := s.queue.Publish(ctx, job("w-missing", "no-such-task", "xchat-0.5-1.fc20")); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	var attempts []int
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, RetryWait: time.Millisecond,
		OnDone: func(j contract.Job, e contract.Execution) { attempts = append(attempts, j.Attempt) }})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 1 || attempts[0] != 1 {
		t.Fatalf("reported after attempts %v, want once after the first", attempts)
	}
	rs := s.stored(t, "w-missing")
	if len(rs) != 1 || rs[0].Outcome != "ABORTED" || !strings.Contains(rs[0].Note, `task "no-such-task": no repository`) {
		t.Fatalf("stored: %+v", rs)
	}
}

func TestWorkerReportsARedeliveredJobOnce(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	// The same job twice: as if a worker reported it and died before acking.
	j := job("w-twice", "nvr-format", "xchat-0.5-1.fc20")
	if err := s.queue.Publish(ctx, j, j); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := s.stored(t, "w-twice"); len(rs) != 1 {
		t.Fatalf("stored %d results, want 1: %+v", len(rs), rs)
	}
}

const slowFormula = `name: slow
actions:
  - name: wait
    shell:
      - [sh, -c, 'touch "$$0/started"; sleep 2', "${artifactsdir}"]
  - name: report
    resultsdb:
      results: "results: [{outcome: PASSED}]"
`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWorkerStopLetsRunningJobsFinish(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	if err := s.queue.Publish(context.Background(), job("w-finish", "slow", "a-1-1"), job("w-later", "slow", "b-1-1")); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Concurrency: 1})
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	waitFor(t, "the job to start", func() bool {
		_, err := os.Stat(filepath.Join(s.cfg.Runner.ArtifactsDir, "w-finish", "started"))
		return err == nil
	})
	stop() // SIGTERM
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if rs := s.stored(t, "w-finish"); len(rs) != 1 || rs[0].Outcome != "PASSED" {
		t.Fatalf("running job: %+v", rs)
	}
	if rs := s.stored(t, "w-later"); len(rs) != 0 {
		t.Fatalf("a job was started after the stop: %+v", rs)
	}
	if p, f := s.queue.Len(); p != 1 || f != 0 {
		t.Fatalf("queue: %d pending, %d in flight; want the second job pending", p, f)
	}
}

func TestWorkerStopHandsRunningJobsBack(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	if err := s.queue.Publish(context.Background(), job("w-back", "slow", "a-1-1")); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, ShutdownGrace: -1})
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	waitFor(t, "the job to start", func() bool {
		_, err := os.Stat(filepath.Join(s.cfg.Runner.ArtifactsDir, "w-back", "started"))
		return err == nil
	})
	start := time.Now()
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("stop took %s: the job was not stopped", d)
	}
	if rs := s.stored(t, "w-back"); len(rs) != 0 {
		t.Fatalf("an interrupted job was reported: %+v", rs)
	}
	if p, f := s.queue.Len(); p != 1 || f != 0 {
		t.Fatalf("queue: %d pending, %d in flight; want the job handed back", p, f)
	}
}

func TestGiveUpReasonNamesTheLastAction(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	j := job("w-died", "slow", "a-1-1")
	// An attempt that died in the middle of its first action: stopped
	// once the action has started, however long the machine took to get
	// there.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		started := filepath.Join(s.cfg.Runner.ArtifactsDir, j.UUID, "started")
		for ctx.Err() == nil {
			if _, err := os.Stat(started); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if _, err := s.runner.RunJob(ctx, j); err == nil {
		t.Fatal("the interrupted run did not say so")
	}
	j.Attempt = 3
	if err := s.queue.Publish(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, MaxAttempts: 3}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs := s.stored(t, "w-died")
	if len(rs) != 1 || rs[0].Outcome != "CRASHED" || !strings.Contains(rs[0].Note, `the last attempt was in action "wait"`) {
		t.Fatalf("stored: %+v", rs)
	}
}

// A job comes over its attempts once more after an earlier attempt
// reported its results (or, having given up, its CRASHED result) and died
// before its ack, maybe on another host: it is acked, and ResultsDB keeps
// exactly the results it had, no CRASHED result beside them. The chaos soak
// found both (PASSED,CRASHED and CRASHED,CRASHED in one group).
func TestJobOverItsAttemptsWithStoredResultsIsNotCrashedAgain(t *testing.T) {
	for _, earlier := range []contract.Outcome{contract.Passed, contract.Crashed} {
		t.Run(string(earlier), func(t *testing.T) {
			s := newStack(t)
			ctx := context.Background()
			j := job("w-reported-"+strings.ToLower(string(earlier)), "nvr-format", "xchat-0.5-1.fc20")
			// The earlier attempt, on another host: its own spool.
			other, err := reporter.New(reporter.Options{ResultsDBURL: s.url, SpoolDir: filepath.Join(t.TempDir(), "other-spool")})
			if err != nil {
				t.Fatal(err)
			}
			exec := contract.Execution{UUID: j.UUID, ExecutionStatus: contract.ExecutionOK, Item: j.Item, ItemType: j.ItemType, TaskName: j.TaskName,
				Results: []contract.Result{{Item: j.Item, Type: j.ItemType, CheckName: "dist.nvr-format", Outcome: earlier, Note: "the earlier attempt"}}}
			if err := other.Report(ctx, exec); err != nil {
				t.Fatal(err)
			}
			j.Attempt = 3 // this delivery is the fourth
			if err := s.queue.Publish(ctx, j); err != nil {
				t.Fatal(err)
			}
			s.queue.Seal()
			if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Stored: s.reporter.Stored, MaxAttempts: 3}).Run(ctx); err != nil {
				t.Fatal(err)
			}
			rs := s.stored(t, j.UUID)
			if len(rs) != 1 || rs[0].Outcome != string(earlier) || rs[0].Note != "the earlier attempt" {
				t.Fatalf("stored %+v, want only the earlier attempt's %s result", rs, earlier)
			}
			if pending, inflight := s.queue.Len(); pending+inflight != 0 {
				t.Fatalf("%d jobs left in the queue, %d taken: the delivery was not acked", pending, inflight)
			}
		})
	}
}

// Whether an earlier attempt reported cannot be told while ResultsDB is
// away: the job over its attempts is handed back, not given a CRASHED
// result that might sit beside stored ones.
func TestJobOverItsAttemptsWaitsForResultsDB(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	j := job("w-unknown", "nvr-format", "xchat-0.5-1.fc20")
	j.Attempt = 3
	if err := s.queue.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	stored := func(ctx context.Context, uuid string) (bool, error) {
		if calls.Add(1) <= 5 {
			return false, errors.New("ResultsDB unavailable")
		}
		return s.reporter.Stored(ctx, uuid)
	}
	var mu sync.Mutex
	var done []contract.Execution
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Stored: stored, MaxAttempts: 3, ReportWait: time.Millisecond,
		OnDone: func(_ contract.Job, e contract.Execution) { mu.Lock(); done = append(done, e); mu.Unlock() }})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(ctx)
	waitFor(t, "the job to end", func() bool { mu.Lock(); defer mu.Unlock(); return len(done) > 0 })
	if n := calls.Load(); n != 6 {
		t.Fatalf("Stored was asked %d times, want 5 failures, the job handed back, and a sixth time", n)
	}
	if rs := s.stored(t, j.UUID); len(rs) != 1 || rs[0].Outcome != "CRASHED" {
		t.Fatalf("stored %+v, want one CRASHED result once ResultsDB could tell none was stored", rs)
	}
}

func TestJobsRunOnTheirOwnCopyOfTheTask(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "stateful", `name: stateful
actions:
  - name: count
    shell:
      - [sh, -c, 'echo run >> state.txt; test "$$(wc -l < state.txt)" -eq 1']
`)
	for _, uuid := range []string{"iso-1", "iso-2"} {
		exec, err := s.runner.RunJob(context.Background(), job(uuid, "stateful", "a-1-1"))
		if err != nil || exec.ExecutionStatus != contract.ExecutionOK {
			t.Fatalf("%s: %v %+v", uuid, err, exec)
		}
	}
}

func TestJobWithoutUUIDIsReportedOnce(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	j := job("", "nvr-format", "xchat-0.5-1.fc20")
	j.MsgID = "msg-1"
	if err := s.queue.Publish(ctx, j, j); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	var uuids []string
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter,
		OnDone: func(j contract.Job, e contract.Execution) { uuids = append(uuids, e.UUID) }})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(uuids) != 2 || uuids[0] != uuids[1] || uuids[0] != JobUUID(j) {
		t.Fatalf("uuids %v", uuids)
	}
	if rs := s.stored(t, uuids[0]); len(rs) != 1 {
		t.Fatalf("stored %d results, want 1", len(rs))
	}
}

func TestCheckoutFailureStillLeavesALog(t *testing.T) {
	s := newStack(t)
	exec, err := s.runner.RunJob(context.Background(), job("no-task", "no-such-task", "a-1-1"))
	if err != nil || exec.ExecutionStatus != contract.ExecutionNotOK || exec.Infra {
		t.Fatalf("%v %+v", err, exec)
	}
	log, err := os.ReadFile(filepath.Join(exec.Artifacts, runner.LogDir, "taskotron.log"))
	if err != nil || !strings.Contains(string(log), "no repository no-such-task") {
		t.Fatalf("log: %v %s", err, log)
	}
}

// TestWorkerRunsJobsConcurrently: with Concurrency 2, two jobs that each
// wait for the other to start both pass; one at a time, the first would
// give up waiting.
func TestWorkerRunsJobsConcurrently(t *testing.T) {
	s := newStack(t)
	// Unsandboxed: the two runs meet in a folder they share, which no
	// sandbox shows.
	s.cfg.Runner.Sandbox = "off"
	s.runner = runner.New(runner.Options{Config: s.cfg, Checkout: s.co})
	meet := t.TempDir()
	s.addTask(t, "meet", `name: meet
actions:
  - name: wait for the other job
    shell:
      - shell: sh
        script: 'touch "$1/$TASKOTRON_ITEM"; for i in $(seq 100); do [ $(ls "$1" | wc -l) -ge 2 ] && exit 0; sleep 0.05; done; echo alone >&2; exit 1'
        args: ["`+meet+`"]
  - resultsdb:
      results: "results: [{outcome: PASSED}]"
`)
	ctx := context.Background()
	if err := s.queue.Publish(ctx, job("w-meet-1", "meet", "a-1-1"), job("w-meet-2", "meet", "b-1-1")); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Concurrency: 2}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, uuid := range []string{"w-meet-1", "w-meet-2"} {
		if rs := s.stored(t, uuid); len(rs) != 1 || rs[0].Outcome != "PASSED" {
			t.Errorf("%s: stored %+v, want one PASSED (the jobs did not run at the same time)", uuid, rs)
		}
	}
}

// TestWorkerAcksSpooledResults: with ResultsDB down, a finished job's
// results go to the spool and the job is acked; they reach ResultsDB once
// it is back, exactly once.
func TestWorkerAcksSpooledResults(t *testing.T) {
	s := newStack(t)
	spool := filepath.Join(t.TempDir(), "spool")
	down, err := reporter.New(reporter.Options{ResultsDBURL: "http://127.0.0.1:1/api/v2.0", SpoolDir: spool, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.queue.Publish(ctx, job("w-spool", "nvr-format", "xchat-0.5-1.fc20")); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: down}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if p, f := s.queue.Len(); p != 0 || f != 0 {
		t.Fatalf("queue: %d pending, %d in flight; want the spooled job acked", p, f)
	}
	// ResultsDB is back (the stack's server): flush the same spool there.
	if rs := s.stored(t, "w-spool"); len(rs) != 0 {
		t.Fatalf("stored while ResultsDB was down: %+v", rs)
	}
	up, err := reporter.New(reporter.Options{ResultsDBURL: s.url, SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := up.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if rs := s.stored(t, "w-spool"); len(rs) != 1 || rs[0].Outcome != "PASSED" {
		t.Fatalf("after the flush: stored %+v, want one PASSED", rs)
	}
}

// TestWorkerStopsDuringARetryWait: a job waiting out the backoff before its
// retry does not hold a stopping worker; it goes back to the queue.
func TestWorkerStopsDuringARetryWait(t *testing.T) {
	s := newStack(t)
	s.kojiAt("http://127.0.0.1:1/kojihub")
	s.addTask(t, "download", "name: download\nactions:\n  - koji: {action: download, koji_build: '${koji_build}', arch: [x86_64], target_dir: '${workdir}'}\n")
	if err := s.queue.Publish(context.Background(), job("w-wait", "download", "xchat-0.5-1.fc20")); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, RetryWait: time.Minute})
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	waitFor(t, "the first attempt to fail", func() bool {
		_, err := os.Stat(filepath.Join(s.cfg.Runner.ArtifactsDir, "w-wait", "taskotron", "execution.json"))
		return err == nil
	})
	time.Sleep(100 * time.Millisecond) // into the wait
	start := time.Now()
	stop() // SIGTERM
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker sat out the retry wait instead of stopping")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if p, f := s.queue.Len(); p != 1 || f != 0 {
		t.Fatalf("queue: %d pending, %d in flight; want the job handed back", p, f)
	}
	if rs := s.stored(t, "w-wait"); len(rs) != 0 {
		t.Fatalf("reported before its attempts were used up: %+v", rs)
	}
}

// TestWorkerDropsADuplicateOfARunningJob: two deliveries of one job (a
// retry published just before a crash) taken at once by one worker: the
// second does not run beside the first, which would share its folders and
// kill its processes; the job is reported once, PASSED.
func TestWorkerDropsADuplicateOfARunningJob(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "slow", slowFormula)
	j := job("w-dup", "slow", "a-1-1")
	if err := s.queue.Publish(context.Background(), j, j); err != nil {
		t.Fatal(err)
	}
	s.queue.Seal()
	var mu sync.Mutex
	var runs []contract.Execution
	w := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter, Concurrency: 2, OnDone: func(_ contract.Job, e contract.Execution) {
		mu.Lock()
		runs = append(runs, e)
		mu.Unlock()
	}})
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs := s.stored(t, "w-dup"); len(rs) != 1 || rs[0].Outcome != "PASSED" {
		t.Fatalf("stored %+v, want one PASSED", rs)
	}
	if len(runs) != 1 {
		t.Fatalf("ran %d times: %+v", len(runs), runs)
	}
	if p, f := s.queue.Len(); p != 0 || f != 0 {
		t.Fatalf("queue: %d pending, %d in flight", p, f)
	}
}

// TestWorkerStartKillsOrphans: task processes whose worker died (their
// TASKOTRON_RUNNER mark names a process that is gone) are killed when a
// worker starts; those of a live worker are not.
func TestWorkerStartKillsOrphans(t *testing.T) {
	s := newStack(t)
	// A process that ran and is gone: its mark is dead.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadMark := fmt.Sprintf("%d-1", gone.Process.Pid)
	start := func(mark string) *exec.Cmd {
		c := exec.Command("sleep", "60")
		c.Env = []string{"TASKOTRON_UUID=orphan", directives.RunnerEnv + "=" + mark}
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	orphan := start(deadMark)
	live := start(directives.ProcessMark())
	exited := make(chan struct{})
	go func() { orphan.Wait(); close(exited) }()
	s.queue.Seal()
	if err := New(Options{Queue: s.queue, Runner: s.runner, Reporter: s.reporter}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("an orphan of a dead worker is still running")
	}
	if err := live.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("a live worker's task process was killed: %v", err)
	}
}

func TestJobErrorsNameTheFormulaAsItsAuthorKnowsIt(t *testing.T) {
	s := newStack(t)
	s.addTask(t, "broken", `name: broken
actions:
  - name: fail here
    dummy:
      result: FAIL
      msg: boom
`)
	exec, err := s.runner.RunJob(context.Background(), job("named-1", "broken", "a-1-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`broken@[0-9a-f]{12}/runtask\.yml:3: action "fail here"`).MatchString(exec.Status) {
		t.Errorf("status %q should name broken@<commit>/runtask.yml:3 and the action", exec.Status)
	}
	if strings.Contains(exec.Status, ".checkouts") {
		t.Errorf("status names the cache path: %q", exec.Status)
	}
}
