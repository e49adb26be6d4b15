package resultsdb

import (
	"fmt"
	"sync"
	"testing"
)

// Results posted at once share transactions: each still gets its own
// data, groups and event, and one the database refuses (a NUL byte on
// PostgreSQL, which the store takes as it comes) fails alone while the
// others are stored.
func TestResultsPostedTogetherAreStoredApart(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store := openTestStore(t, kind)
			const n = 60
			bad := -1
			if kind == "postgres" {
				bad = 17
			}
			ids := make([]int64, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					note := fmt.Sprintf("note %d", i)
					if i == bad {
						note = "a NUL \x00 here"
					}
					ref := fmt.Sprintf("http://execdb/jobs/job-%d", i%5)
					r, err := store.CreateResult(t.Context(), NewResult{
						Outcome:  "PASSED",
						Testcase: TestcaseUpdate{Name: fmt.Sprintf("dist.check%d", i%3)},
						Groups:   []GroupUpdate{{UUID: fmt.Sprintf("job-%d", i%5), RefURL: &ref, SetRefURL: true}, {UUID: fmt.Sprintf("own-%d", i)}},
						Note:     &note,
						Data:     []DataPair{{"item", fmt.Sprintf("pkg-%d", i)}, {"arch", "x86_64"}},
						Event:    true,
					})
					ids[i], errs[i] = r.ID, err
				}()
			}
			wg.Wait()
			for i := range n {
				if i == bad {
					if errs[i] == nil {
						t.Errorf("result %d with a NUL byte was stored", i)
					}
					continue
				}
				if errs[i] != nil {
					t.Errorf("result %d: %v", i, errs[i])
					continue
				}
				r, err := store.Result(t.Context(), ids[i])
				if err != nil {
					t.Fatalf("result %d (id %d): %v", i, ids[i], err)
				}
				if r.Note == nil || *r.Note != fmt.Sprintf("note %d", i) || r.Testcase.Name != fmt.Sprintf("dist.check%d", i%3) {
					t.Errorf("result %d stored as %+v", i, r)
				}
				if len(r.Data) != 2 || !hasPair(r.Data, "arch", "x86_64") || !hasPair(r.Data, "item", fmt.Sprintf("pkg-%d", i)) {
					t.Errorf("result %d has data %v", i, r.Data)
				}
				if want := []string{fmt.Sprintf("job-%d", i%5), fmt.Sprintf("own-%d", i)}; !sameSet(r.Groups, want) {
					t.Errorf("result %d in groups %v, want %v", i, r.Groups, want)
				}
			}
			want := n
			if bad >= 0 {
				want--
			}
			events, err := store.PendingEvents(t.Context(), 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != want {
				t.Errorf("%d events queued, want one per stored result (%d)", len(events), want)
			}
		})
	}
}

func hasPair(data []DataPair, k, v string) bool {
	for _, p := range data {
		if p.Key == k && p.Value == v {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}
