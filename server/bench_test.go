package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
)

// storageless answers the executions API's writes as the central server
// does, over a real socket, but keeps nothing: the ceiling an HTTP round
// trip of the same client puts on the central server.
func storageless(tb testing.TB) string {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2.0/executions/events", func(w http.ResponseWriter, r *http.Request) {
		var evs []contract.ExecutionEvent
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, ev := range evs {
			if err := execdb.CheckEvent(ev); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"applied": %d, "received": %d}`, len(evs), len(evs))
	})
	mux.HandleFunc("PUT /api/v2.0/executions/{uuid}/logs/{attempt}/{name}", func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"size": %d}`, off+n)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// benchCentral is the central server of the benchmark: on SQLite files, or
// with EXECDB_BENCH_DB=postgres its executions on PostgreSQL in a schema of
// its own.
func benchCentral(b *testing.B) (*central, string) {
	if os.Getenv("EXECDB_BENCH_DB") != "postgres" {
		return startCentral(b, nil), "SQLite"
	}
	dsn := freshSchema(b)
	return startCentral(b, nil, func(cfg *config.Config) { cfg.ExecDB.DB = dsn }), "PostgreSQL"
}

const senders = 4

// postEvents sends total state changes (4 per execution: queued, running,
// an action, finished) from senders goroutines in batches of batch, and
// returns how many it sent per second.
func postEvents(b *testing.B, c *execdb.Client, run string, total, batch int) float64 {
	ctx := context.Background()
	per := total / senders
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			evs := make([]contract.ExecutionEvent, 0, batch)
			t0 := time.Now().UTC()
			for i := range per {
				uuid := fmt.Sprintf("%s-%d-%d", run, s, i/4)
				ev := contract.ExecutionEvent{ID: fmt.Sprintf("%s-%d-%d", run, s, i), UUID: uuid, Attempt: 1, Time: t0.Add(time.Duration(i) * time.Millisecond)}
				switch i % 4 {
				case 0:
					ev.Attempt, ev.State, ev.TaskName, ev.Item, ev.Arch = 0, contract.StateQueued, "rpmlint", "xchat-0.5-1.fc20", "x86_64"
				case 1:
					ev.State, ev.Worker = contract.StateRunning, "bench:1"
				case 2:
					ev.State, ev.Worker, ev.Action = contract.StateRunning, "bench:1", "run"
				case 3:
					ev.State, ev.ExecutionStatus, ev.Outcome, ev.Results = contract.StateFinished, "OK", contract.Passed, 1
				}
				evs = append(evs, ev)
				if len(evs) == batch || i == per-1 {
					if err := c.Post(ctx, evs); err != nil {
						b.Error(err)
						return
					}
					evs = evs[:0]
				}
			}
		})
	}
	wg.Wait()
	return float64(per*senders) / time.Since(start).Seconds()
}

const line = "xchat.x86_64: W: no-manual-page-for-binary xchat (a log line of about 80 bytes)\n"

// appendLines sends total log lines from senders goroutines, each to a log
// of its own, perRequest lines a request; it returns lines per second.
func appendLines(b *testing.B, c *execdb.Client, run string, total, perRequest int) float64 {
	ctx := context.Background()
	chunk := []byte(strings.Repeat(line, perRequest))
	per := total / senders / perRequest
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			var off int64
			for range per {
				n, err := c.AppendLog(ctx, fmt.Sprintf("%s-%d", run, s), 1, "taskotron.log", off, chunk)
				if err != nil {
					b.Error(err)
					return
				}
				off = n
			}
		})
	}
	wg.Wait()
	return float64(per*senders*perRequest) / time.Since(start).Seconds()
}

// followDelays writes n lines into a run's log folder, one every gap, as a
// task does; the worker's Shipper sends them to the central server and a
// client follows the log (as `taskotron logs -f` and the execution page
// do). It returns each line's delay from written to read by the follower.
// Without the Shipper each line is appended as it is written: what the
// server and the long poll add alone.
func followDelays(b *testing.B, c *central, n int, gap time.Duration, viaShipper bool) []time.Duration {
	ctx := context.Background()
	uuid := fmt.Sprintf("follow-%d", time.Now().UnixNano())
	run := contract.ExecutionEvent{ID: uuid + "-r", UUID: uuid, Attempt: 1, State: contract.StateRunning, Time: time.Now().UTC(), Worker: "bench:1"}
	if err := c.client.Post(ctx, []contract.ExecutionEvent{run}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "01-work.stdout"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var ship *execdb.Shipper
	if viaShipper {
		ship = c.client.Ship(dir, uuid, 1, nil)
	}
	var off int64
	written := make([]time.Time, n)
	var mu sync.Mutex
	delays := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var pos int64
		var partial string
		for len(delays) < n {
			data, _, err := c.client.ReadLog(ctx, uuid, 1, "01-work.stdout", pos, 10*time.Second)
			if err != nil {
				continue // not there yet
			}
			now := time.Now()
			pos += int64(len(data))
			lines := strings.Split(partial+string(data), "\n")
			partial = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				i, _ := strconv.Atoi(strings.TrimPrefix(l, "line "))
				mu.Lock()
				delays = append(delays, now.Sub(written[i]))
				mu.Unlock()
			}
		}
	}()
	for i := range n {
		mu.Lock()
		written[i] = time.Now()
		mu.Unlock()
		l := fmt.Sprintf("line %d\n", i)
		if viaShipper {
			f.WriteString(l)
		} else if off, err = c.client.AppendLog(ctx, uuid, 1, "01-work.stdout", off, []byte(l)); err != nil {
			b.Fatal(err)
		}
		time.Sleep(gap)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("the follower got %d of %d lines", len(delays), n)
	}
	if ship != nil {
		ship.Finish(10 * time.Second)
	}
	return delays
}

// roundTrips times n requests of one line each to url, one at a time.
func roundTrips(b *testing.B, url string, n int) []time.Duration {
	c, err := execdb.NewClient(url, token, nil)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]time.Duration, n)
	var off int64
	for i := range n {
		t := time.Now()
		if off, err = c.AppendLog(context.Background(), "rt", 1, "x.log", off, []byte(line)); err != nil {
			b.Fatal(err)
		}
		out[i] = time.Since(t)
	}
	return out
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkCentralServer measures what the central server takes, over real
// sockets, beside the same requests to a handler that stores nothing (the
// ceiling HTTP and the client put on it): state changes per second in the
// outbox's batches and one per request, log lines per second one per
// request and in chunks, and the delay from a line a task writes to the line
// a following client reads (through the worker's Shipper, which looks for
// new output every 250 ms), p50 and p99. It prints a table. Run it once:
//
//	go test -run '^$' -bench CentralServer -benchtime 1x ./server
//
// EXECDB_BENCH_DB=postgres puts the executions on PostgreSQL.
func BenchmarkCentralServer(b *testing.B) {
	c, dbName := benchCentral(b)
	ceiling, err := execdb.NewClient(storageless(b), token, nil)
	if err != nil {
		b.Fatal(err)
	}
	for run := range b.N {
		id := fmt.Sprintf("r%d", run)
		type row struct{ what, central, ceiling string }
		var rows []row
		rate := func(v float64) string { return fmt.Sprintf("%.0f/s", v) }
		for _, batch := range []int{100, 1} {
			total := 40000
			if batch == 1 {
				total = 4000
			}
			got := postEvents(b, c.client, id+"-ev"+strconv.Itoa(batch), total, batch)
			top := postEvents(b, ceiling, id+"-ev"+strconv.Itoa(batch), total, batch)
			rows = append(rows, row{fmt.Sprintf("state changes, %d a request", batch), rate(got), rate(top)})
			b.ReportMetric(got, fmt.Sprintf("events/s@%d", batch))
		}
		for _, per := range []int{1, 100} {
			total := 4000
			if per > 1 {
				total = 400000
			}
			got := appendLines(b, c.client, id+"-log"+strconv.Itoa(per), total, per)
			top := appendLines(b, ceiling, id+"-log"+strconv.Itoa(per), total, per)
			rows = append(rows, row{fmt.Sprintf("log lines, %d a request", per), rate(got), rate(top)})
			b.ReportMetric(got, fmt.Sprintf("lines/s@%d", per))
		}
		delays := followDelays(b, c, 400, 10*time.Millisecond, true)
		direct := followDelays(b, c, 400, 10*time.Millisecond, false)
		rtCentral := roundTrips(b, c.url, 500)
		rtCeiling := roundTrips(b, storageless(b), 500)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
		rows = append(rows,
			row{"one log append round trip, p50", ms(pct(rtCentral, 0.5)), ms(pct(rtCeiling, 0.5))},
			row{"one log append round trip, p99", ms(pct(rtCentral, 0.99)), ms(pct(rtCeiling, 0.99))},
			row{"line appended → follower, p50", ms(pct(direct, 0.5)), ""},
			row{"line appended → follower, p99", ms(pct(direct, 0.99)), ""},
			row{"task line → follower, p50", ms(pct(delays, 0.5)), "appended → follower + 125 ms"},
			row{"task line → follower, p99", ms(pct(delays, 0.99)), "appended → follower + 250 ms"},
		)
		b.ReportMetric(float64(pct(delays, 0.5).Microseconds())/1000, "follow-p50-ms")
		b.ReportMetric(float64(pct(delays, 0.99).Microseconds())/1000, "follow-p99-ms")
		fmt.Printf("\n| %-40s | %-16s | %-30s |\n| %s | %s | %s |\n", "central server ("+dbName+", "+strconv.Itoa(senders)+" senders)", "central server", "ceiling: storage-less handler",
			strings.Repeat("-", 40), strings.Repeat("-", 16), strings.Repeat("-", 30))
		for _, r := range rows {
			fmt.Printf("| %-40s | %16s | %30s |\n", r.what, r.central, r.ceiling)
		}
	}
}
