package resultsdb

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/taskotron-go/taskotron/regression"
)

// The QA pages: is this build OK (the item page), how did this package
// do across builds (the package page), and what got worse (regressions).

// runnerLog is the runner's own log inside an execution's artifacts
// folder (runner.LogDir + "/taskotron.log"; this package does not import
// the runner). A result that links to the folder, because its task named
// no artifact, gets a link to this file: a log, not a folder listing.
const runnerLog = "taskotron/taskotron.log"

// logLinks splits a result's ref_url into a link to a log file and one
// to the artifacts folder it is in.
func logLinks(refURL string, groups []string) (log, artifacts string) {
	if refURL == "" {
		return "", ""
	}
	if strings.HasSuffix(refURL, "/") {
		return refURL + runnerLog, refURL
	}
	for _, g := range groups {
		if i := strings.Index(refURL, "/"+g+"/"); i >= 0 {
			return refURL, refURL[:i+len(g)+2]
		}
	}
	if i := strings.LastIndexByte(refURL, '/'); i > len("https://") {
		return refURL, refURL[:i+1]
	}
	return refURL, ""
}

// checkRow is one result on a QA page.
type checkRow struct {
	resultView
	Log, Artifacts string
	Infra          bool
	Regression     *prevView // the result this one is worse than
}

// prevView is the previous build's result a regression is worse than.
type prevView struct {
	ID               int64
	Outcome, Item    string
	ItemURL, Log     string
	Note, SubmitTime string
}

func viewCheck(r Result) checkRow {
	c := checkRow{resultView: viewResult(r), Infra: regression.Infrastructure(r.Outcome)}
	c.Log, c.Artifacts = logLinks(c.RefURL, r.Groups)
	return c
}

func viewPrev(r Result) *prevView {
	v := viewResult(r)
	log, _ := logLinks(v.RefURL, r.Groups)
	return &prevView{ID: r.ID, Outcome: r.Outcome, Item: v.Item, ItemURL: v.ItemURL, Log: log, Note: v.Note, SubmitTime: v.SubmitTime}
}

// outcomeCount is how many results have one outcome.
type outcomeCount struct {
	Outcome string
	N       int
}

// itemView is the item page: one build (or update), its latest result of
// every testcase and arch, and a verdict at the top.
type itemView struct {
	Item, Type          string
	Package, PackageURL string
	Verdict, Headline   string
	Counts              []outcomeCount
	Regressions         int
	Rows                []checkRow
	LatestSubmitted     string
}

// verdict sums a build's latest results up: the worst package outcome
// decides, and infrastructure failures make it incomplete rather than bad.
func verdict(rows []checkRow) (class, headline string) {
	// A failed check is a verdict; one that could not decide asks for a
	// look; the headline says the firmer of the two.
	failed, undecided, infra := false, false, 0
	for _, r := range rows {
		failed = failed || r.Outcome == regression.Failed
		undecided = undecided || r.Outcome == regression.NeedsInspection
		if r.Infra {
			infra++
		}
	}
	checks := func(n int) string {
		if n == 1 {
			return "1 check"
		}
		return fmt.Sprintf("%d checks", n)
	}
	switch {
	case len(rows) == 0:
		return "NONE", "No results yet"
	case failed:
		return regression.Failed, "Not OK: a check failed"
	case undecided:
		return regression.NeedsInspection, "Needs a look: a check could not decide"
	case infra > 0:
		return regression.Aborted, "Incomplete: " + checks(infra) + " did not run through, for reasons of the infrastructure"
	default:
		return regression.Passed, "OK: every check passed"
	}
}

func countOutcomes(rows []checkRow, order []string) []outcomeCount {
	n := map[string]int{}
	for _, r := range rows {
		n[r.Outcome]++
	}
	var out []outcomeCount
	for _, o := range order {
		if n[o] > 0 {
			out = append(out, outcomeCount{o, n[o]})
			delete(n, o)
		}
	}
	for o, k := range n {
		out = append(out, outcomeCount{o, k})
	}
	return out
}

// legendOrder is the order outcomes are counted and explained in.
var legendOrder = []string{regression.Failed, regression.NeedsInspection, regression.Info, regression.Passed, regression.Aborted, regression.Crashed}

func packageURL(name string) string { return "/packages/" + url.PathEscape(name) }

// itemPage fills in the item page from the item's latest results.
func (s *server) itemPage(r *http.Request, d *pageData, item, typ string, list []Result) error {
	iv := &itemView{Item: item, Type: typ}
	hs := s.histories()
	if err := hs.preload(r.Context(), list); err != nil {
		return err
	}
	seen := map[int64]bool{}
	for _, res := range list {
		if seen[res.ID] {
			continue
		}
		seen[res.ID] = true
		row := viewCheck(res)
		prev, worse, err := hs.regressionOf(r.Context(), res)
		if err != nil {
			return err
		}
		if worse {
			row.Regression = viewPrev(prev)
			iv.Regressions++
		}
		if b, _, ok := buildOf(res); ok && iv.Package == "" {
			iv.Package, iv.PackageURL = b.Name, packageURL(b.Name)
		}
		if row.SubmitTime > iv.LatestSubmitted {
			iv.LatestSubmitted = row.SubmitTime
		}
		iv.Rows = append(iv.Rows, row)
	}
	slices.SortFunc(iv.Rows, func(a, b checkRow) int {
		return cmp.Or(cmp.Compare(a.Testcase, b.Testcase), cmp.Compare(a.Arch, b.Arch))
	})
	iv.Verdict, iv.Headline = verdict(iv.Rows)
	iv.Counts = countOutcomes(iv.Rows, legendOrder)
	d.ItemPage = iv
	return nil
}

// packageView is the package page: every build, newest first, with its
// latest result of every testcase and arch.
type packageView struct {
	Name   string
	Keys   []regression.Key
	Builds []buildRow
}

type buildRow struct {
	NVR, ItemURL string
	Verdict      string
	Cells        []packageCell
}

type packageCell struct {
	Has bool
	checkRow
}

func (s *server) pagePackage(w http.ResponseWriter, r *http.Request) {
	name, ok := pathValue(r, "name")
	title := "Package " + name
	if !ok || name == "" {
		s.pageFail(w, r, title, ErrNotFound)
		return
	}
	h, err := s.packageHistory(r.Context(), name)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	if len(h.builds) == 0 {
		s.render(w, r, http.StatusNotFound, "error", &pageData{Title: title,
			Error: "No koji_build results for a package named " + name + "."})
		return
	}
	pv := &packageView{Name: name, Keys: h.keys}
	for _, b := range h.builds {
		row := buildRow{NVR: b.String(), ItemURL: itemURL(b.String(), regression.PackageType)}
		var rows []checkRow
		for _, k := range h.keys {
			res, ok := h.latest[b.String()][k]
			if !ok {
				row.Cells = append(row.Cells, packageCell{})
				continue
			}
			c := viewCheck(res)
			if prev, worse := h.previous(res); worse {
				c.Regression = viewPrev(prev)
			}
			row.Cells = append(row.Cells, packageCell{Has: true, checkRow: c})
			rows = append(rows, c)
		}
		row.Verdict, _ = verdict(rows)
		pv.Builds = append(pv.Builds, row)
	}
	s.render(w, r, http.StatusOK, "package", &pageData{Title: title, Package: pv,
		API: APIPrefix + "/results?type=koji_build&item:like=" + url.QueryEscape(name+"-*")})
}

// regressionRow is one line of the regressions page.
type regressionRow struct {
	checkRow
	Previous *prevView
}

func (s *server) pageRegressions(w http.ResponseWriter, r *http.Request) {
	v, ok := s.cleanQuery(w, r)
	if !ok {
		return
	}
	d := &pageData{Title: "Regressions", API: apiURL(r), Form: map[string]string{}}
	for _, k := range []string{"item", "testcases", "since"} {
		d.Form[k] = v.Get(k)
	}
	list, more, err := s.pagedRegressions(r)
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	for _, p := range list {
		d.Regressions = append(d.Regressions, regressionRow{checkRow: viewCheck(p.Result), Previous: viewPrev(p.Previous)})
	}
	s.pageLinks(r, d, more)
	s.render(w, r, http.StatusOK, "regressions", d)
}

// searchHit is one item a search found.
type searchHit struct{ Item, Type, URL string }

// searchLimit bounds the results a search reads to find distinct items.
const searchLimit = 500

// pageSearch finds items: an exact item or package name goes straight to
// its page; otherwise the items containing the text are listed.
func (s *server) pageSearch(w http.ResponseWriter, r *http.Request) {
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		s.pageFail(w, r, "Search", err)
		return
	}
	q := strings.TrimSpace(v.Get("q"))
	d := &pageData{Title: "Search", Query: q}
	if q == "" {
		s.render(w, r, http.StatusOK, "search", d)
		return
	}
	ctx := r.Context()
	exact, err := s.store.Results(ctx, ResultQuery{Data: []DataFilter{{Key: "item", Values: []string{q}}}, Limit: 1})
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	if len(exact) == 1 {
		http.Redirect(w, r, itemURL(q, first(dataValues(exact[0], "type"))), http.StatusSeeOther)
		return
	}
	if h, err := s.packageHistory(ctx, q); err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	} else if len(h.builds) > 0 {
		http.Redirect(w, r, packageURL(q), http.StatusSeeOther)
		return
	}
	like, err := likePatterns("q", []string{"%" + q + "%"})
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	list, err := s.store.Results(ctx, ResultQuery{Data: []DataFilter{{Key: "item", Values: like, Like: true}}, Limit: searchLimit})
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	seen := map[string]bool{}
	pkgs := map[string]bool{}
	for _, res := range list {
		item, typ := first(dataValues(res, "item")), first(dataValues(res, "type"))
		if seen[item+"\x00"+typ] {
			continue
		}
		seen[item+"\x00"+typ] = true
		d.Hits = append(d.Hits, searchHit{Item: item, Type: typ, URL: itemURL(item, typ)})
		if b, _, ok := buildOf(res); ok && !pkgs[b.Name] {
			pkgs[b.Name] = true
			d.Packages = append(d.Packages, b.Name)
		}
	}
	slices.SortFunc(d.Hits, func(a, b searchHit) int { return cmp.Or(cmp.Compare(a.Item, b.Item), cmp.Compare(a.Type, b.Type)) })
	slices.Sort(d.Packages)
	s.render(w, r, http.StatusOK, "search", d)
}

func dataValues(r Result, key string) []string {
	var out []string
	for _, p := range r.Data {
		if p.Key == key {
			out = append(out, p.Value)
		}
	}
	return out
}
