package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/labs"
)

// processCPU is the user and system time a process has used so far.
func processCPU(tb testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkLabsDispatch runs the central server as its own process with 100
// simulated labs long-polling it from this one, then queues 10,000 requests
// (LABS_BENCH_REQUESTS changes the count) and prints: requests dispatched
// (leased) and finished (reported to ResultsDB) per second, the central
// server's CPU per request (from /proc/<pid>/stat around the run), and the
// delay from a request to its start when labs are idle (p50, p99). Run it
// once: go test -run '^$' -bench LabsDispatch -benchtime 1x ./cmd/taskotron
func BenchmarkLabsDispatch(b *testing.B) {
	total := 10000
	if s := os.Getenv("LABS_BENCH_REQUESTS"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	const nLabs = 100
	dir := b.TempDir()
	bin := filepath.Join(dir, "taskotron")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	hubData := filepath.Join(dir, "hub")
	ctx := context.Background()
	// LABS_BENCH_DB=postgres puts the central server's databases (labs,
	// executions, results) on PostgreSQL, in a schema of its own;
	// postgres-labs only the labs'.
	dsn, dbName := "sqlite:"+filepath.Join(hubData, "executions.sqlite"), "SQLite"
	var dbEnv []string
	if db := os.Getenv("LABS_BENCH_DB"); db == "postgres" || db == "postgres-labs" {
		schema := fmt.Sprintf("labsbench_%x", rand.Uint64())
		pg := "postgres://postgres@127.0.0.1:5432/test"
		if out, err := exec.Command("psql", pg, "-c", "CREATE SCHEMA "+schema).CombinedOutput(); err != nil {
			b.Fatalf("PostgreSQL for the benchmark: %v %s", err, out)
		}
		defer exec.Command("psql", pg, "-c", "DROP SCHEMA "+schema+" CASCADE").Run()
		dsn, dbName = pg+"?search_path="+schema, "PostgreSQL"
		dbEnv = []string{"TASKOTRON_LABS_DB=" + dsn, "TASKOTRON_EXECDB_DB=" + dsn, "TASKOTRON_RESULTSDB_DB=" + dsn}
		if db == "postgres-labs" {
			// Only the labs' tables: the executions and results stay on SQLite.
			dbEnv, dbName = dbEnv[:1], "labs on PostgreSQL"
		}
	}
	store, err := labs.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, nLabs)
	for i := range tokens {
		if tokens[i], err = store.AddToken(ctx, fmt.Sprintf("lab-%03d", i)); err != nil {
			b.Fatal(err)
		}
	}
	store.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(20000))
	hub := exec.Command(bin, "resultsdb", "serve", "--listen", addr)
	hub.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+hubData, "TASKOTRON_EXECDB_TOKEN=admin-secret", "TASKOTRON_LOG_LEVEL=warn",
		"TASKOTRON_LABS_POLL_WAIT=20s", "TASKOTRON_LABS_LEASE_TIMEOUT=2m")
	hub.Env = append(hub.Env, dbEnv...)
	hubLog := &lockedBuffer{}
	hub.Stdout, hub.Stderr = hubLog, hubLog
	if err := hub.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() }()
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := httpGet(&testing.T{}, url+"/api/v2.0/"); code > 0 && code < 500 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the central server did not start:\n%s", hubLog)
		}
	}

	var mu sync.Mutex
	started := map[string]time.Time{}
	var finished, failures atomic.Int64
	lastLease := atomic.Int64{}
	labCtx, stopLabs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range nLabs {
		c, err := labs.NewClient(url, tokens[i], nil)
		if err != nil {
			b.Fatal(err)
		}
		cpu := "cortex-a9"
		if i%2 == 1 {
			cpu = "cortex-a8"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for labCtx.Err() == nil {
				l, err := c.Poll(labCtx, labs.PollRequest{Board: fmt.Sprintf("board-%03d", i), Labels: labs.Labels{"cpu": cpu}, Wait: "20s"})
				if err != nil {
					if labCtx.Err() == nil {
						failures.Add(1)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				if l == nil {
					continue
				}
				now := time.Now()
				lastLease.Store(now.UnixNano())
				mu.Lock()
				started[l.Request.ID] = now
				mu.Unlock()
				exec := contract.Execution{UUID: l.Request.ID, ExecutionStatus: contract.ExecutionOK, Results: []contract.Result{{
					Item: l.Request.Item, Type: l.Request.ItemType, CheckName: "scratch.bench", Outcome: contract.Passed}}}
				if _, err := c.PutRun(labCtx, l.ID, exec); err != nil {
					failures.Add(1)
					continue
				}
				finished.Add(1)
			}
		}()
	}
	defer func() { stopLabs(); wg.Wait() }()
	admin, _ := labs.NewClient(url, "admin-secret", nil)
	time.Sleep(time.Second) // every lab waiting in its poll

	// Idle labs: the delay from a put to the lab's lease.
	var idle []time.Duration
	for i := range 200 {
		t0 := time.Now()
		got, err := admin.Put(ctx, labs.NewRequest{TaskName: "bench", Item: fmt.Sprintf("idle-%d", i), ItemType: "koji_build", Where: labs.Labels{"cpu": "cortex-a9"}})
		if err != nil {
			b.Fatal(err)
		}
		id := got[0].ID
		for {
			mu.Lock()
			at, ok := started[id]
			mu.Unlock()
			if ok {
				idle = append(idle, at.Sub(t0))
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		for finished.Load() < int64(i+1) {
			time.Sleep(200 * time.Microsecond)
		}
	}
	base := finished.Load()

	// The flood: total requests, half for any cortex-a9 board, half for any.
	b.ResetTimer()
	cpu0, t0 := processCPU(b, hub.Process.Pid), time.Now()
	for start := 0; start < total; start += 1000 {
		var batch []labs.NewRequest
		for i := start; i < min(start+1000, total); i++ {
			var where labs.Labels
			if i%2 == 0 {
				where = labs.Labels{"cpu": "cortex-a9"}
			}
			batch = append(batch, labs.NewRequest{TaskName: "bench", Item: fmt.Sprintf("flood-%d", i), ItemType: "koji_build", Where: where, Priority: i % 3})
		}
		if _, err := admin.Put(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Minute); finished.Load() < base+int64(total); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d finished", finished.Load()-base, total)
		}
	}
	elapsed, cpu := time.Since(t0), processCPU(b, hub.Process.Pid)-cpu0
	b.StopTimer()
	dispatchSpan := time.Duration(lastLease.Load() - t0.UnixNano())
	rows := [][2]string{
		{"database", dbName},
		{"labs long-polling", strconv.Itoa(nLabs)},
		{"requests", strconv.Itoa(total)},
		{"requests dispatched per second", fmt.Sprintf("%.0f", float64(total)/dispatchSpan.Seconds())},
		{"requests finished (reported) per second", fmt.Sprintf("%.0f", float64(total)/elapsed.Seconds())},
		{"central server CPU per request", fmt.Sprintf("%.2f ms", float64(cpu.Microseconds())/1000/float64(total))},
		{"central server CPU in all", cpu.Round(10 * time.Millisecond).String()},
		{"idle lab: request to start, p50", percentile(idle, 0.50).Round(10 * time.Microsecond).String()},
		{"idle lab: request to start, p99", percentile(idle, 0.99).Round(10 * time.Microsecond).String()},
		{"lab calls that failed", strconv.FormatInt(failures.Load(), 10)},
	}
	fmt.Printf("\n| %-40s | %-18s |\n| %s | %s |\n", "labs benchmark", "", strings.Repeat("-", 40), strings.Repeat("-", 18))
	for _, r := range rows {
		fmt.Printf("| %-40s | %18s |\n", r[0], r[1])
	}
	b.ReportMetric(float64(total)/dispatchSpan.Seconds(), "dispatched/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(total), "cpu-ms/req")
	b.ReportMetric(float64(percentile(idle, 0.99).Microseconds())/1000, "idle-p99-ms")
	if failures.Load() > 0 {
		b.Errorf("%d lab calls failed:\n%s", failures.Load(), hubLog)
	}
}
