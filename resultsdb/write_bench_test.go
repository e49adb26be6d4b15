package resultsdb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The write goal of issue 17: on SQLite at least 50 % of a storage-less
// server decoding the same posts, on PostgreSQL at least 30 %, at 4 and 16
// clients, a 201 still meaning committed. The ceiling is our own handler
// over a store that keeps nothing, so it decodes, validates and answers
// exactly as the real one does. Rounds are interleaved so that the load of
// the machine moves all three alike; RESULTSDB_WRITE_POSTS sets the posts
// per measurement (default 4000), RESULTSDB_WRITE_STORES the stores
// (sqlite,postgres).

// discardStore keeps nothing: the handler's own cost is the ceiling.
type discardStore struct {
	Store
	next atomic.Int64
}

func (d *discardStore) CreateResult(_ context.Context, in NewResult) (Result, error) {
	groups := make([]string, 0, len(in.Groups))
	for _, g := range in.Groups {
		groups = append(groups, g.UUID)
	}
	return Result{ID: d.next.Add(1), Outcome: in.Outcome, Testcase: Testcase{Name: in.Testcase.Name, RefURL: in.Testcase.RefURL},
		Groups: groups, Note: in.Note, RefURL: in.RefURL, Data: in.Data, SubmitTime: time.Now()}, nil
}

func writePosts() int {
	if n, err := strconv.Atoi(os.Getenv("RESULTSDB_WRITE_POSTS")); err == nil && n > 0 {
		return n
	}
	return 4000
}

// writeBody is a post shaped like the runner's: a testcase of a few dozen,
// the job's group, the item's data.
func writeBody(i int) []byte {
	return fmt.Appendf(nil, `{"outcome": "PASSED", "testcase": {"name": "dist.check%02d", "ref_url": "https://fedoraproject.org/wiki/Taskotron/Tasks/check"},`+
		` "groups": [{"uuid": "write-%d", "ref_url": "http://execdb/jobs/write-%d"}], "note": "0 errors, 2 warnings", "ref_url": "http://artifacts/write-%d/task.log",`+
		` "data": {"item": "pkg%05d-1.0-1.fc40", "type": "koji_build", "arch": "x86_64"}}`, i%40, i/8, i/8, i/8, i/8%5000)
}

// postRate posts n results from clients at once and answers posts per
// second and the 99th percentile latency.
func postRate(b *testing.B, client *http.Client, base string, clients, n int, offset *atomic.Int64) (float64, time.Duration) {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				body := writeBody(int(offset.Add(1)))
				t := time.Now()
				resp, err := client.Post(base+"/api/v2.0/results", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				// Read to the end, so that the connection is used again.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("POST: %d", resp.StatusCode)
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return 0, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return rate, all[min(len(all)-1, len(all)*99/100)]
}

func BenchmarkResultsWrite(b *testing.B) {
	const rounds = 3
	n := writePosts()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	type target struct {
		name  string
		base  string
		goal  float64 // of the ceiling
		rates map[int][]float64
		p99   map[int][]time.Duration
	}
	targets := []*target{{name: "ceiling (no storage)", base: startBenchServer(b, &discardStore{})}}
	kinds := storeKinds
	if v := os.Getenv("RESULTSDB_WRITE_STORES"); v != "" {
		kinds = strings.Split(v, ",")
	}
	for _, kind := range kinds {
		goal := 0.5
		if kind == "postgres" {
			goal = 0.3
		}
		targets = append(targets, &target{name: kind, base: startBenchServer(b, openTestStore(b, kind)), goal: goal})
	}
	for _, t := range targets {
		t.rates, t.p99 = map[int][]float64{}, map[int][]time.Duration{}
	}
	var offset atomic.Int64
	concurrency := []int{4, 16}
	for b.Loop() {
		for range rounds {
			for _, c := range concurrency {
				for _, t := range targets {
					rate, p99 := postRate(b, client, t.base, c, n, &offset)
					t.rates[c] = append(t.rates[c], rate)
					t.p99[c] = append(t.p99[c], p99)
				}
			}
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	fmt.Printf("\n%-22s %8s %12s %10s %10s %6s\n", "ResultsDB POSTs", "clients", "posts/s", "of ceiling", "p99", "goal")
	for _, c := range concurrency {
		ceiling := median(targets[0].rates[c])
		for _, t := range targets {
			rate := median(t.rates[c])
			p99 := t.p99[c]
			sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
			goal := ""
			if t.goal > 0 {
				goal = fmt.Sprintf("%.0f %%", 100*t.goal)
			}
			fmt.Printf("%-22s %8d %12.0f %9.0f %% %10s %6s\n", t.name, c, rate, 100*rate/ceiling, p99[len(p99)/2].Round(10*time.Microsecond), goal)
			if t.goal > 0 {
				b.ReportMetric(100*rate/ceiling, fmt.Sprintf("%%ceiling_%s_c%d", t.name, c))
			}
		}
	}
}
