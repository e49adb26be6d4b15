package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/reporter"
)

// spillResults is how many results the spilling task makes: three times
// what a run holds in memory, so that the report reads them from the
// artifacts' results file.
const spillResults = 3 * directives.MemoryResults

// spillTask writes a TAP13 file of N_RESULTS results, each with a note of
// its own ("case <n>"), so that a lost or doubled one can be named; the
// resultsdb directive streams it from the file.
const spillTask = `name: spill
namespace: scratch
actions:
  - name: write results
    shell:
      - [sh, -c, 'n=$$1; { printf "TAP version 13\n1..%d\n" $$n; i=1; while [ $$i -le $$n ]; do printf "ok %d - case %d\n  ---\n  note: case %d\n  ...\n" $$i $$i $$i; i=$$((i+1)); done; } > "$$0/out.tap"', "${artifactsdir}", "N_RESULTS"]
  - name: report
    resultsdb:
      file: ${artifactsdir}/out.tap
`

// TestWorkerKilledMidReportOfSpilledResultsOnRabbitMQ: a `taskotron
// worker` process on the real RabbitMQ runs a task with more results than a
// run holds in memory and is SIGKILLed part-way through posting them, just
// after ResultsDB stored a post (a batch of results) whose answer the
// worker never got. A second worker process (another host: its own data
// folder and spool) takes the redelivered job, runs it again and reports:
// ResultsDB ends with every result exactly once, the execution ends
// finished on the second attempt, and the queue is empty.
func TestWorkerKilledMidReportOfSpilledResultsOnRabbitMQ(t *testing.T) {
	c := newExecCluster(t, "spill", strings.ReplaceAll(spillTask, "N_RESULTS", strconv.Itoa(spillResults)))
	pg := freshPostgres(t)
	c.serverEnv = []string{"TASKOTRON_RESULTSDB_DB=" + pg, "TASKOTRON_EXECDB_DB=" + pg}
	c.serve()
	ctx := context.Background()

	// The workers reach ResultsDB through a proxy the test controls. The
	// post (one result, or a batch of them) that carries result holdAt is
	// passed on and stored, and its answer held back until the worker that
	// sent it is dead: the kill lands mid-report, at a post whose outcome
	// the worker cannot know, however fast or slow the machine is. Every
	// other request passes straight through.
	const holdAt = spillResults / 2
	central, err := url.Parse(c.central)
	if err != nil {
		t.Fatal(err)
	}
	upstream := httputil.NewSingleHostReverseProxy(central)
	var (
		mu     sync.Mutex
		posted int // results in the posts so far
	)
	held, release := make(chan int, 1), make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		single := strings.HasSuffix(r.URL.Path, "/api/v2.0/results")
		if r.Method != http.MethodPost || !single && !strings.HasSuffix(r.URL.Path, "/api/v2.0/results/batch") {
			upstream.ServeHTTP(w, r)
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		n := 1
		if !single {
			var batch []json.RawMessage
			if err := json.Unmarshal(raw, &batch); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			n = len(batch)
		}
		mu.Lock()
		first := posted + 1
		posted += n
		hold := first <= holdAt && holdAt <= posted
		mu.Unlock()
		if !hold {
			upstream.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		upstream.ServeHTTP(rec, r)
		held <- rec.Code
		<-release
		// The answer never reaches the killed worker.
	}))
	t.Cleanup(proxy.Close)
	t.Cleanup(open) // before proxy.Close, which waits for the held handler
	resultsEnv := []string{"TASKOTRON_RESULTSDB_URL=" + proxy.URL + "/api/v2.0"}

	// startWorker runs a worker as the leader of its own process group, so
	// that the kill takes everything it started, as a host's OOM killer or
	// a lost machine would. exited is closed when it ended, so that a
	// worker that cannot start fails the test at once rather than at a
	// timeout.
	startWorker := func(name string) (cmd *exec.Cmd, logs *lockedBuffer, exited <-chan struct{}) {
		cmd = exec.Command(c.bin, "worker", "--arches", "x86_64", "--concurrency", "1")
		cmd.Env = append(c.env(name), resultsEnv...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		logs = &lockedBuffer{}
		out := io.MultiWriter(logs, &c.all)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
		return cmd, logs, done
	}
	// ResultsDB is read directly, not through the proxy.
	client, err := reporter.NewResultsDBClient(c.central+"/api/v2.0", reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}

	a, aLogs, aExited := startWorker("worker-a")
	uuid := c.trigger()
	select {
	case <-aExited:
		t.Fatalf("worker A ended (%s) before it posted result %d; logs:\n%s", a.ProcessState, holdAt, c.all.String())
	case code := <-held:
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("ResultsDB answered the held post %d; logs:\n%s", code, c.all.String())
		}
	case <-time.After(180 * time.Second):
		t.Fatalf("worker A did not post result %d of %d within 180s; logs:\n%s", holdAt, spillResults, c.all.String())
	}
	if !strings.Contains(aLogs.String(), "results kept in a file") {
		t.Fatalf("worker A's run did not keep its results in a file, so this is not the spilled path:\n%s", aLogs)
	}
	before, err := client.GroupResults(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || len(before) >= spillResults {
		t.Fatalf("ResultsDB holds %d of %d results at the kill; the kill must land mid-report (0 < stored < %d)", len(before), spillResults, spillResults)
	}
	if err := syscall.Kill(-a.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-aExited
	open()
	t.Logf("worker A killed with %d of %d results stored", len(before), spillResults)

	b, bLogs, bExited := startWorker("worker-b")
	waitUntil(t, "the job to finish on worker B", 180*time.Second, &c.all, func() bool {
		select {
		case <-bExited:
			t.Fatalf("worker B ended (%s) before the job finished; logs:\n%s", b.ProcessState, c.all.String())
		default:
		}
		return c.get(uuid).State == contract.StateFinished
	})

	// What a user checks: every result is in ResultsDB once.
	rs, err := client.GroupResults(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	notes, ids := map[string]int{}, map[string]bool{}
	for _, r := range rs {
		notes[r.Note]++
		ids[r.ID] = true
	}
	var lost, twice []string
	for i := 1; i <= spillResults; i++ {
		switch n := notes[fmt.Sprintf("case %d", i)]; {
		case n == 0:
			lost = append(lost, strconv.Itoa(i))
		case n > 1:
			twice = append(twice, fmt.Sprintf("%d (%d times)", i, n))
		}
	}
	if len(rs) != spillResults || len(ids) != spillResults || len(notes) != spillResults || len(lost) > 0 || len(twice) > 0 {
		t.Fatalf("ResultsDB holds %d results (%d ids, %d notes), want %d, each once; lost: %s; stored more than once: %s\nworker B:\n%s",
			len(rs), len(ids), len(notes), spillResults, firstFew(lost), firstFew(twice), bLogs)
	}

	// The execution ended on the second attempt, the first one crashed.
	d := c.get(uuid)
	if d.Attempt != 2 || d.ExecutionStatus != contract.ExecutionOK || d.Outcome != "PASSED" || d.Results != spillResults {
		t.Errorf("finished record: %+v; want attempt 2 OK, PASSED, %d results", d.Execution, spillResults)
	}
	if len(d.Attempts) != 2 || d.Attempts[0].State != contract.StateCrashed || d.Attempts[1].State != contract.StateFinished {
		t.Errorf("attempts: %+v; want attempt 1 crashed, attempt 2 finished", d.Attempts)
	}
	if !strings.Contains(bLogs.String(), "attempt=2") {
		t.Errorf("worker B did not see the job as a second attempt:\n%s", bLogs)
	}

	// Worker B acked the job: stopped, it hands nothing back to the queue.
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bExited:
		if !b.ProcessState.Success() {
			t.Fatalf("worker B did not stop cleanly on SIGTERM: %s\n%s", b.ProcessState, bLogs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker B did not stop on SIGTERM\n%s", bLogs)
	}
	conn, err := amqp.Dial(workerAMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	info, err := ch.QueueDeclarePassive(c.queue+".x86_64", true, false, false, false, amqp.Table{"x-max-priority": int32(9)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 0 {
		t.Fatalf("%d jobs left in the queue", info.Messages)
	}
}

// firstFew lists up to ten of names, saying how many more there are.
func firstFew(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 10 {
		return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return strings.Join(names, ", ")
}
