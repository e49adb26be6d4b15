package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// stored is one result as ResultsDB serves it.
type stored struct {
	ID         int64               `json:"id"`
	Outcome    string              `json:"outcome"`
	SubmitTime string              `json:"submit_time"`
	Groups     []string            `json:"groups"`
	Data       map[string][]string `json:"data"`
	Testcase   struct {
		Name string `json:"name"`
	} `json:"testcase"`
}

func (s stored) first(k string) string {
	if v := s.Data[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// key is the job the result belongs to. The testcase is
// <namespace>.<task> (dist.nvr-format, scratch.rpmlint), or the task alone
// for the CRASHED result of a job that never finished.
func (s stored) key() jobKey {
	task := s.Testcase.Name
	if _, rest, ok := strings.Cut(task, "."); ok {
		task = rest
	}
	return jobKey{Task: task, Item: s.first("item"), Type: s.first("type"), Arch: s.first("arch")}
}

// fetchResults reads every result ResultsDB holds (the run's schema holds
// only the run's).
func fetchResults(ctx context.Context, base string) ([]stored, error) {
	var all []stored
	client := &http.Client{Timeout: 30 * time.Second}
	for page := 0; ; page++ {
		u := fmt.Sprintf("%s/api/v2.0/results?limit=5000&page=%d", base, page)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(raw)))
		}
		var doc struct {
			Data []stored `json:"data"`
			Next *string  `json:"next"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		all = append(all, doc.Data...)
		if doc.Next == nil || *doc.Next == "" || len(doc.Data) == 0 {
			return all, nil
		}
		if _, err := url.Parse(*doc.Next); err != nil {
			return nil, err
		}
	}
}

// tally compares the results with the jobs expected.
type tally struct {
	Expected   int            // jobs
	OneSet     int            // jobs with exactly one result set (one group, one result)
	Missing    int            // jobs without results
	Duplicated int            // results beyond one per job
	Unexpected int            // results of no expected job
	Outcomes   map[string]int // of the results
	// MissingJobs, DuplicatedJobs and UnexpectedJobs name the first few.
	MissingJobs    []string
	DuplicatedJobs []string
	UnexpectedJobs []string
}

const named = 10

// count tallies results against the expected jobs (by key; a key may
// stand for several jobs: tag events of one tag). Each job should have
// exactly one result set: one ResultsDB group (its uuid) holding one result.
func count(expected map[jobKey]int, results []stored) tally {
	t := tally{Outcomes: map[string]int{}}
	groups := map[jobKey]map[string][]string{} // key -> group uuid -> outcomes
	for _, r := range results {
		t.Outcomes[r.Outcome]++
		k := r.key()
		if groups[k] == nil {
			groups[k] = map[string][]string{}
		}
		g := strings.Join(r.Groups, ",")
		groups[k][g] = append(groups[k][g], r.Outcome)
	}
	keys := make([]jobKey, 0, len(expected))
	for k := range expected {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		n := expected[k]
		t.Expected += n
		gs := groups[k]
		m, total, multi := len(gs), 0, 0
		for _, outcomes := range gs {
			c := len(outcomes)
			total += c
			if c > 1 {
				multi++
			}
		}
		missing := max(0, n-m)
		dup := total - min(n, m)
		affected := min(n-missing, multi+max(0, m-n))
		t.Missing += missing
		t.Duplicated += dup
		t.OneSet += n - missing - affected
		if missing > 0 && len(t.MissingJobs) < named {
			t.MissingJobs = append(t.MissingJobs, fmt.Sprintf("%s: %d of %d jobs without results", k, missing, n))
		}
		if dup > 0 && len(t.DuplicatedJobs) < named {
			t.DuplicatedJobs = append(t.DuplicatedJobs, fmt.Sprintf("%s: %d results in %d groups for %d jobs %s", k, total, m, n, groupList(gs, m > n)))
		}
	}
	for k, gs := range groups {
		if _, ok := expected[k]; ok {
			continue
		}
		for g, outcomes := range gs {
			t.Unexpected += len(outcomes)
			if len(t.UnexpectedJobs) < named {
				t.UnexpectedJobs = append(t.UnexpectedJobs, fmt.Sprintf("%s: results %s in group %s", k, strings.Join(outcomes, ","), g))
			}
		}
	}
	sort.Strings(t.UnexpectedJobs)
	return t
}

// groupList shows the groups holding more than one result, or all of them
// when there are more groups than jobs; a few at most.
func groupList(gs map[string][]string, all bool) string {
	var parts []string
	for g, outcomes := range gs {
		if all || len(outcomes) > 1 {
			parts = append(parts, g+": "+strings.Join(outcomes, ","))
		}
	}
	sort.Strings(parts)
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("… %d more", len(parts)-6))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// latencies says, for each job of a message of its own (not tag events,
// which share their key), how long it took from the message's confirm to
// the first of its results in ResultsDB.
func latencies(results []stored, sentAt map[jobKey]time.Time) []time.Duration {
	first := map[jobKey]time.Time{}
	for _, r := range results {
		at, err := time.Parse("2006-01-02T15:04:05.999999", r.SubmitTime)
		if err != nil {
			continue
		}
		k := r.key()
		if f, ok := first[k]; !ok || at.Before(f) {
			first[k] = at
		}
	}
	var out []time.Duration
	for k, sent := range sentAt {
		if at, ok := first[k]; ok {
			out = append(out, at.Sub(sent))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// quantile is the q-quantile of sorted durations (0 when there are none).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
