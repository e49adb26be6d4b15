package resultsdb

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// Results written together see one another's changes to a testcase or a
// group in the order they were posted, as if each had been written alone:
// each answer shows the testcase as it was after that result, and the
// last result to set a field wins.
func TestBatchAppliesUpdatesInOrder(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			store := openTestStore(t, kind)
			ctx := t.Context()
			str := func(s string) *string { return &s }
			if _, err := store.SaveTestcase(ctx, TestcaseUpdate{Name: "dist.old", RefURL: str("http://wiki/old"), SetRefURL: true}); err != nil {
				t.Fatal(err)
			}
			batch := []NewResult{
				{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.new"},
					Groups: []GroupUpdate{{UUID: "job-1", Description: str("first"), SetDescription: true}}},
				{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.new", RefURL: str("http://wiki/new"), SetRefURL: true},
					Groups: []GroupUpdate{{UUID: "job-1", RefURL: str("http://execdb/job-1"), SetRefURL: true}, {UUID: "job-1"}}},
				{Outcome: "FAILED", Testcase: TestcaseUpdate{Name: "dist.new"},
					Groups: []GroupUpdate{{UUID: "job-1", Description: str("third"), SetDescription: true}}},
				{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.old"}},
				{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: "dist.old", RefURL: nil, SetRefURL: true}},
			}
			out, err := store.CreateResults(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			wantRef := []*string{nil, str("http://wiki/new"), str("http://wiki/new"), str("http://wiki/old"), nil}
			for i, r := range out {
				if !equalPtr(r.Testcase.RefURL, wantRef[i]) {
					t.Errorf("result %d answered testcase ref_url %v, want %v", i+1, shown(r.Testcase.RefURL), shown(wantRef[i]))
				}
				if i > 0 && r.ID <= out[i-1].ID {
					t.Errorf("result %d has id %d after %d: not numbered in the order posted", i+1, r.ID, out[i-1].ID)
				}
			}
			if got := out[1].Groups; len(got) != 1 || got[0] != "job-1" {
				t.Errorf("result named job-1 twice is in groups %v, want [job-1]", got)
			}
			for name, want := range map[string]*string{"dist.new": str("http://wiki/new"), "dist.old": nil} {
				tc, err := store.Testcase(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if !equalPtr(tc.RefURL, want) {
					t.Errorf("testcase %s stored with ref_url %v, want %v", name, shown(tc.RefURL), shown(want))
				}
			}
			g, err := store.Group(ctx, "job-1")
			if err != nil {
				t.Fatal(err)
			}
			if deref(g.Description) != "third" || deref(g.RefURL) != "http://execdb/job-1" {
				t.Errorf("group stored as description %v, ref_url %v; want third, http://execdb/job-1", shown(g.Description), shown(g.RefURL))
			}
			for i, r := range out[:3] {
				stored, err := store.Result(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(stored.Groups) != 1 || stored.Groups[0] != "job-1" {
					t.Errorf("result %d stored in groups %v, want [job-1]", i+1, stored.Groups)
				}
			}
		})
	}
}

// shown is p as a test failure shows it.
func shown(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// Two servers on one database create the same groups and testcases at the
// same time: every result is stored and linked to each of its groups.
func TestTwoServersCreateTheSameGroups(t *testing.T) {
	first, dsn := openTestStoreDSN(t, "postgres")
	second, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	const rounds, each = 20, 8
	type posted struct {
		id    int64
		group string
	}
	var mu sync.Mutex
	var all []posted
	var wg sync.WaitGroup
	for s, store := range []Store{first, second} {
		for c := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range rounds {
					group := fmt.Sprintf("job-%d", round)
					r, err := store.CreateResult(t.Context(), NewResult{Outcome: "PASSED",
						Testcase: TestcaseUpdate{Name: fmt.Sprintf("dist.check%d", round)},
						Groups:   []GroupUpdate{{UUID: group}, {UUID: fmt.Sprintf("own-%d-%d-%d", s, c, round)}}})
					if err != nil {
						t.Errorf("server %d client %d round %d: %v", s+1, c, round, err)
						return
					}
					mu.Lock()
					all = append(all, posted{r.ID, group})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(all) != 2*each*rounds {
		t.Fatalf("%d results stored, want %d", len(all), 2*each*rounds)
	}
	for _, p := range all {
		r, err := first.Result(t.Context(), p.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Groups) != 2 || !slices.Contains(r.Groups, p.group) {
			t.Errorf("result %d in groups %v, want %s and its own", p.id, r.Groups, p.group)
		}
	}
}

// A batch of results written together leaves the testcases and groups as
// the same results written one at a time do, and answers each result the
// same: checked on random batches, on both stores, against SQLite writing
// one result at a time (a different code path from either batch).
func TestBatchAgreesWithOneAtATime(t *testing.T) {
	ctx := t.Context()
	together := func(s Store, batch []NewResult) ([]Result, error) { return s.CreateResults(ctx, batch) }
	alone := func(s Store, batch []NewResult) ([]Result, error) {
		var out []Result
		for _, in := range batch {
			r, err := s.CreateResult(ctx, in)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	type subject struct {
		label string
		store Store
		write func(Store, []NewResult) ([]Result, error)
	}
	reference := subject{"sqlite one at a time", openTestStore(t, "sqlite"), alone}
	subjects := []subject{
		{"sqlite batch", openTestStore(t, "sqlite"), together},
		{"postgres batch", openTestStore(t, "postgres"), together},
		{"postgres one at a time", openTestStore(t, "postgres"), alone},
	}
	rng := rand.New(rand.NewPCG(17, 4))
	x, y := "x", "y"
	values := []*string{nil, &x, &y}
	pick := func() *string { return values[rng.IntN(len(values))] }
	for round := range 40 {
		name := func(kind string, i int) string { return fmt.Sprintf("r%d-%s%d", round, kind, i) }
		// Some of the testcases and groups exist before the batch.
		var testcases []TestcaseUpdate
		var groups []GroupUpdate
		for i := range 3 {
			if rng.IntN(2) == 0 {
				testcases = append(testcases, TestcaseUpdate{Name: name("tc", i), RefURL: pick(), SetRefURL: true})
			}
			if rng.IntN(2) == 0 {
				groups = append(groups, GroupUpdate{UUID: name("g", i), Description: pick(), SetDescription: true, RefURL: pick(), SetRefURL: true})
			}
		}
		var batch []NewResult
		for range 1 + rng.IntN(8) {
			in := NewResult{Outcome: "PASSED", Testcase: TestcaseUpdate{Name: name("tc", rng.IntN(3))}}
			if rng.IntN(2) == 0 {
				in.Testcase.RefURL, in.Testcase.SetRefURL = pick(), true
			}
			for range rng.IntN(4) {
				g := GroupUpdate{UUID: name("g", rng.IntN(3))}
				if rng.IntN(2) == 0 {
					g.Description, g.SetDescription = pick(), true
				}
				if rng.IntN(2) == 0 {
					g.RefURL, g.SetRefURL = pick(), true
				}
				in.Groups = append(in.Groups, g)
			}
			batch = append(batch, in)
		}
		outcome := func(s subject) string {
			for _, u := range testcases {
				if _, err := s.store.SaveTestcase(ctx, u); err != nil {
					t.Fatalf("round %d, %s: %v", round, s.label, err)
				}
			}
			for _, u := range groups {
				if _, err := s.store.SaveGroup(ctx, u); err != nil {
					t.Fatalf("round %d, %s: %v", round, s.label, err)
				}
			}
			out, err := s.write(s.store, batch)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, s.label, err)
			}
			var b strings.Builder
			for i, r := range out {
				fmt.Fprintf(&b, "result %d: testcase ref %s, groups %v\n", i+1, shown(r.Testcase.RefURL), r.Groups)
			}
			for i := range 3 {
				if tc, err := s.store.Testcase(ctx, name("tc", i)); err == nil {
					fmt.Fprintf(&b, "testcase %d: ref %s\n", i, shown(tc.RefURL))
				}
				if g, err := s.store.Group(ctx, name("g", i)); err == nil {
					fmt.Fprintf(&b, "group %d: description %s, ref %s\n", i, shown(g.Description), shown(g.RefURL))
				}
			}
			return b.String()
		}
		want := outcome(reference)
		for _, s := range subjects {
			if got := outcome(s); got != want {
				t.Errorf("round %d: %s differs from %s:\n%s\nwant\n%s", round, s.label, reference.label, got, want)
			}
		}
	}
}

// A statement the database will not prepare is named in the error by its
// first line, so the error stays on one line however long the statement.
func TestPrepareErrorNamesTheStatementOnOneLine(t *testing.T) {
	s := openTestStore(t, "sqlite").(*sqlStore)
	var cache sync.Map
	_, _, err := s.prepared(t.Context(), &cache, s.read, "SELECT nope FROM missing\nWHERE 1")
	if err == nil {
		t.Fatal("a statement on a missing table was prepared")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `"SELECT nope FROM missing …"`) || !strings.Contains(msg, "no such table") {
		t.Errorf("error %q: want the statement's first line and the cause, on one line", msg)
	}
	if got := queryHead(insertPostgres); got != `"WITH ids AS MATERIALIZED ( …"` {
		t.Errorf("the batch statement is named %s", got)
	}
}
