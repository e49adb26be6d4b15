package resultsdb

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/regression"
	"github.com/taskotron-go/taskotron/rpmver"
)

// Regressions (package regression says what one is) are worked out when
// asked, from each build's latest result per testcase and arch: nothing
// is stored, so a result posted late or a rerun counts at once.

// buildOf reads a result as a package build's result: its item as an
// NVR when its type is koji_build, and what it must share with a result
// of another build to be compared (testcase, arch).
func buildOf(r Result) (rpmver.NVR, regression.Key, bool) {
	var items, types, arches []string
	for _, p := range r.Data {
		switch p.Key {
		case "item":
			items = append(items, p.Value)
		case "type":
			types = append(types, p.Value)
		case "arch":
			arches = append(arches, p.Value)
		}
	}
	if len(items) == 0 || !slices.Contains(types, regression.PackageType) {
		return rpmver.NVR{}, regression.Key{}, false
	}
	// A result for several arches (noarch and src) is compared with one
	// for the same set, in whatever order they were posted.
	slices.Sort(arches)
	n, ok := regression.Build(items[0], regression.PackageType)
	return n, regression.Key{Testcase: r.Testcase.Name, Arch: strings.Join(arches, ",")}, ok
}

// history is every build of one package with its latest result per
// testcase and arch.
type history struct {
	builds []rpmver.NVR                         // newest first
	latest map[string]map[regression.Key]Result // by NVR string
	keys   []regression.Key                     // every testcase and arch, sorted
}

// historyWorkers is how many package histories load at once. One LIKE
// query per package: SQLite uses its index for one 'name-%' pattern, not
// for an OR of many, which scans.
const historyWorkers = 4

// packageHistory loads the history of the package name.
func (s *server) packageHistory(ctx context.Context, name string) (*history, error) {
	m, err := s.packageHistories(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	return m[name], nil
}

// packageHistories loads the histories of the packages named, a few at
// once. Every name gets a history, empty when no build of it is known.
func (s *server) packageHistories(ctx context.Context, names []string) (map[string]*history, error) {
	out := map[string]*history{}
	keys := map[string]map[regression.Key]bool{}
	for _, n := range names {
		out[n] = &history{latest: map[string]map[regression.Key]Result{}}
		keys[n] = map[regression.Key]bool{}
	}
	lists := make([][]Result, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, historyWorkers)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// '_' in a name is LIKE's one-character wildcard: what it
			// lets through too is dropped below, by the parsed name.
			q := ResultQuery{Data: []DataFilter{
				{Key: "type", Values: []string{regression.PackageType}},
				{Key: "item", Values: []string{n + "-%"}, Like: true},
			}}
			lists[i], errs[i] = s.store.Latest(ctx, q, []string{"item", "arch"})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, name := range names {
		h := out[name]
		for _, r := range lists[i] {
			b, k, ok := buildOf(r)
			if !ok || b.Name != name {
				continue
			}
			id := b.String()
			m := h.latest[id]
			if m == nil {
				m = map[regression.Key]Result{}
				h.latest[id] = m
				h.builds = append(h.builds, b)
			}
			if _, dup := m[k]; !dup {
				m[k] = r
			}
			if !keys[name][k] {
				keys[name][k] = true
				h.keys = append(h.keys, k)
			}
		}
	}
	for _, h := range out {
		regression.NewestFirst(h.builds)
		slices.SortFunc(h.keys, func(a, b regression.Key) int {
			return cmp.Or(cmp.Compare(a.Testcase, b.Testcase), cmp.Compare(a.Arch, b.Arch))
		})
	}
	return out, nil
}

// previous returns the result of r's testcase and arch on the build
// before r's, and whether r is worse than it.
func (h *history) previous(r Result) (prev Result, worse bool) {
	b, k, ok := buildOf(r)
	if !ok {
		return Result{}, false
	}
	pb, ok := regression.Previous(b, h.builds)
	if !ok {
		return Result{}, false
	}
	prev, ok = h.latest[pb.String()][k]
	return prev, ok && regression.Worse(r.Outcome, prev.Outcome)
}

// histories loads package histories once per request.
type histories struct {
	s    *server
	byPk map[string]*history
}

func (s *server) histories() *histories { return &histories{s: s, byPk: map[string]*history{}} }

// preload loads, in as few queries as it takes, the histories of the
// packages of the results that are builds.
func (hs *histories) preload(ctx context.Context, results []Result) error {
	var names []string
	seen := map[string]bool{}
	for _, r := range results {
		if b, _, ok := buildOf(r); ok && !seen[b.Name] && hs.byPk[b.Name] == nil {
			seen[b.Name] = true
			names = append(names, b.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	m, err := hs.s.packageHistories(ctx, names)
	if err != nil {
		return err
	}
	maps.Copy(hs.byPk, m)
	return nil
}

func (hs *histories) get(ctx context.Context, name string) (*history, error) {
	if h, ok := hs.byPk[name]; ok {
		return h, nil
	}
	h, err := hs.s.packageHistory(ctx, name)
	if err != nil {
		return nil, err
	}
	hs.byPk[name] = h
	return h, nil
}

// regressionOf tells whether r is a regression, and from which result.
func (hs *histories) regressionOf(ctx context.Context, r Result) (Result, bool, error) {
	b, _, ok := buildOf(r)
	if !ok || !slices.Contains([]string{regression.Info, regression.NeedsInspection, regression.Failed}, r.Outcome) {
		return Result{}, false, nil
	}
	h, err := hs.get(ctx, b.Name)
	if err != nil {
		return Result{}, false, err
	}
	prev, worse := h.previous(r)
	return prev, worse, nil
}

// regressionPair is one regression: a result and the result it is worse
// than.
type regressionPair struct{ Result, Previous Result }

// regressionQuery is what /regressions is asked.
type regressionQuery struct {
	Items, Testcases []string
	Since, Until     time.Time
	IDs              []int64
}

var regressionParams = []string{"page", "limit", "item", "testcases", "since", "result_id"}

func parseRegressionQuery(v url.Values) (regressionQuery, error) {
	var q regressionQuery
	for k := range v {
		// callback and _ are JSONP's, ignored as on /results.
		if !slices.Contains(regressionParams, k) && k != "callback" && k != "_" {
			return q, badf("Malformed Request: regressions: unknown parameter %s; known: %s", pyRepr(k), strings.Join(regressionParams, ", "))
		}
	}
	q.Items = commaList(v.Get("item"))
	q.Testcases = commaList(v.Get("testcases"))
	if s := v.Get("since"); s != "" {
		var err error
		if q.Since, q.Until, err = parseSince(s); err != nil {
			return q, badf("'since' parameter not in ISO8601 format")
		}
	}
	for _, s := range commaList(v.Get("result_id")) {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return q, badf("Malformed Request: result_id: want result ids (whole numbers) separated by commas, got %s", pyRepr(s))
		}
		q.IDs = append(q.IDs, id)
	}
	if n := len(q.Items) + len(q.Testcases) + len(q.IDs); n > maxFilterValues {
		return q, badf("Malformed Request: at most %d values in all filters together, got %d", maxFilterValues, n)
	}
	return q, nil
}

// matches applies the filters to a result fetched by id.
func (q regressionQuery) matches(r Result) bool {
	if len(q.Testcases) > 0 && !slices.Contains(q.Testcases, r.Testcase.Name) {
		return false
	}
	if !q.Since.IsZero() && r.SubmitTime.Before(q.Since) || !q.Until.IsZero() && r.SubmitTime.After(q.Until) {
		return false
	}
	if len(q.Items) > 0 {
		found := false
		for _, p := range r.Data {
			if p.Key == "item" && slices.Contains(q.Items, p.Value) {
				found = true
			}
		}
		return found
	}
	return true
}

// regressions lists, newest first, the results q selects that are
// regressions. Without result_id these are the latest result of each
// build, testcase and arch (a rerun that passes ends a regression); the
// results result_id names are judged whether or not they were rerun
// since, so that whoever got a result's message has a stable answer.
func (s *server) regressions(ctx context.Context, q regressionQuery) ([]regressionPair, error) {
	var candidates []Result
	if len(q.IDs) > 0 {
		for _, id := range q.IDs {
			r, err := s.store.Result(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if q.matches(r) {
				candidates = append(candidates, r)
			}
		}
	} else {
		// Latest takes no outcome filter: a build's latest result
		// decides, whatever it is.
		rq := ResultQuery{Since: q.Since, Until: q.Until, Testcases: q.Testcases,
			Data: []DataFilter{{Key: "type", Values: []string{regression.PackageType}}}}
		if len(q.Items) > 0 {
			rq.Data = append(rq.Data, DataFilter{Key: "item", Values: q.Items})
		}
		list, err := s.store.Latest(ctx, rq, []string{"item", "arch"})
		if err != nil {
			return nil, err
		}
		candidates = list
	}
	hs := s.histories()
	if err := hs.preload(ctx, candidates); err != nil {
		return nil, err
	}
	var out []regressionPair
	seen := map[int64]bool{}
	for _, r := range candidates {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		prev, worse, err := hs.regressionOf(ctx, r)
		if err != nil {
			return nil, err
		}
		if worse {
			out = append(out, regressionPair{Result: r, Previous: prev})
		}
	}
	slices.SortStableFunc(out, func(a, b regressionPair) int {
		return cmp.Or(b.Result.SubmitTime.Compare(a.Result.SubmitTime), cmp.Compare(b.Result.ID, a.Result.ID))
	})
	return out, nil
}

// pagedRegressions is one page of regressions and whether more follow.
func (s *server) pagedRegressions(r *http.Request) ([]regressionPair, bool, error) {
	v, err := query(r)
	if err != nil {
		return nil, false, err
	}
	page, limit, err := pageLimit(v)
	if err != nil {
		return nil, false, err
	}
	q, err := parseRegressionQuery(v)
	if err != nil {
		return nil, false, err
	}
	all, err := s.regressions(r.Context(), q)
	if err != nil {
		return nil, false, err
	}
	start := min(page*limit, len(all))
	end := min(start+limit, len(all))
	return all[start:end], end < len(all), nil
}

type regressionJSON struct {
	Result   resultJSON `json:"result"`
	Previous resultJSON `json:"previous"`
}

// getRegressions answers GET /api/v2.0/regressions.
func (s *server) getRegressions(w http.ResponseWriter, r *http.Request) error {
	list, more, err := s.pagedRegressions(r)
	if err != nil {
		return err
	}
	base := s.base(r)
	data := make([]regressionJSON, len(list))
	for i, p := range list {
		data[i] = regressionJSON{Result: s.resultOut(base, p.Result), Previous: s.resultOut(base, p.Previous)}
	}
	prev, next := prevNext(s.requestURL(r), more)
	writeJSON(w, http.StatusOK, pageJSON{Data: data, Prev: prev, Next: next})
	return nil
}
