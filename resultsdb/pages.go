package resultsdb

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The pages for QA: server-rendered, no JavaScript. Each page's path and
// query are those of the API call behind it, minus the /api/v2.0 prefix.

//go:embed templates/*.html
var templateFS embed.FS

var pageTemplates = loadTemplates()

func loadTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"path": url.PathEscape,
		// wbr lets a long dotted name (a testcase) break after its dots.
		"wbr": func(s string) template.HTML {
			e := template.HTMLEscapeString(s)
			e = strings.ReplaceAll(e, ".", ".<wbr>")
			return template.HTML(strings.ReplaceAll(e, "_", "_<wbr>"))
		},
		"short": func(s string) string {
			if len(s) > 8 {
				return s[:8] + "…"
			}
			return s
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"results", "latest", "item", "package", "regressions", "search", "result", "group", "testcase", "testcases", "groups", "error"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

type resultView struct {
	ID                  int64
	SubmitTime, Outcome string
	When                string // SubmitTime to the minute, for lists
	Testcase            string
	TestcaseRef         string
	Item, Type, Arch    string
	ItemURL             string
	Note, RefURL        string
	Groups              []string
	Data                []DataPair
	Origin              string
}

type groupView struct {
	UUID, Description, RefURL, Artifacts string
	Log, Execution                       string
	Count                                int64
}

type pageData struct {
	Title, API, Error string
	Prev, Next        string
	Action            string
	Form              map[string]string
	Outcomes          []string
	Results           []resultView
	Result            *checkRow
	Group             *groupView
	Groups            []groupView
	Testcase          Testcase
	Testcases         []testcaseView
	Like              string
	Distinct, Item    string
	History           string
	ItemPage          *itemView
	Package           *packageView
	Regressions       []regressionRow
	// Query is the header's search box; Hits and Packages what it found.
	Query    string
	Hits     []searchHit
	Packages []string
}

type testcaseView struct{ Name, RefURL string }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// itemURL is the item page: the latest result per testcase and arch.
func itemURL(item, typ string) string {
	v := "item=" + url.QueryEscape(item)
	if typ != "" {
		v += "&type=" + url.QueryEscape(typ)
	}
	return "/results/latest?" + v + "&_distinct_on=arch"
}

func viewResult(r Result) resultView {
	v := resultView{
		ID: r.ID, SubmitTime: isoformat(r.SubmitTime), When: r.SubmitTime.UTC().Format("2006-01-02 15:04"), Outcome: r.Outcome, Testcase: r.Testcase.Name,
		TestcaseRef: deref(r.Testcase.RefURL), Note: deref(r.Note), RefURL: deref(r.RefURL),
		Groups: r.Groups, Data: r.Data, Origin: r.Origin,
	}
	values := map[string][]string{}
	for _, p := range r.Data {
		values[p.Key] = append(values[p.Key], p.Value)
	}
	v.Item = strings.Join(values["item"], ", ")
	v.Type = strings.Join(values["type"], ", ")
	v.Arch = strings.Join(values["arch"], ", ")
	if len(values["item"]) > 0 {
		v.ItemURL = itemURL(values["item"][0], first(values["type"]))
	}
	return v
}

func first(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

func viewResults(list []Result) []resultView {
	out := make([]resultView, len(list))
	for i, r := range list {
		out[i] = viewResult(r)
	}
	return out
}

func (s *server) pageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/results", http.StatusFound)
	})
	mux.HandleFunc("GET /results", s.pageResults)
	mux.HandleFunc("GET /results/latest", s.pageLatest)
	mux.HandleFunc("GET /results/{id}", s.pageResult)
	mux.HandleFunc("GET /groups", s.pageGroups)
	mux.HandleFunc("GET /groups/{uuid}", s.pageGroup)
	mux.HandleFunc("GET /groups/{uuid}/results", s.pageGroup)
	mux.HandleFunc("GET /testcases", s.pageTestcases)
	mux.HandleFunc("GET /testcases/{name...}", s.pageTestcase)
	mux.HandleFunc("GET /packages/{name}", s.pagePackage)
	mux.HandleFunc("GET /regressions", s.pageRegressions)
	mux.HandleFunc("GET /search", s.pageSearch)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "error", &pageData{Title: "Not found", Error: "There is no page at " + r.URL.Path + "."})
	})
}

func (s *server) render(w http.ResponseWriter, r *http.Request, code int, name string, d *pageData) {
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.Error("render page", "page", name, "url", r.URL.String(), "error", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// pageFail shows an error page for what a query or the store returned.
func (s *server) pageFail(w http.ResponseWriter, r *http.Request, title string, err error) {
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		s.render(w, r, http.StatusBadRequest, "error", &pageData{Title: title, Error: bad.msg})
	case errors.Is(err, ErrNotFound):
		s.render(w, r, http.StatusNotFound, "error", &pageData{Title: title, Error: "Not found."})
	default:
		s.log.Error("page failed", "url", r.URL.String(), "error", err)
		s.render(w, r, http.StatusInternalServerError, "error", &pageData{Title: title, Error: "The database could not answer; try again."})
	}
}

// cleanQuery drops parameters a filter form sent empty. It reports false
// after redirecting to the clean URL, so the page URL stays the API query,
// or after showing why the query cannot be read.
func (s *server) cleanQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		s.pageFail(w, r, "Bad request", err)
		return nil, false
	}
	dirty := false
	for k, vals := range v {
		kept := vals[:0]
		for _, x := range vals {
			if x != "" {
				kept = append(kept, x)
			}
		}
		if len(kept) != len(vals) {
			dirty = true
		}
		if len(kept) == 0 {
			delete(v, k)
		} else {
			v[k] = kept
		}
	}
	if dirty {
		target := r.URL.Path
		if enc := v.Encode(); enc != "" {
			target += "?" + enc
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil, false
	}
	return v, true
}

func (s *server) pageLinks(r *http.Request, d *pageData, more bool) {
	u := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	prev, next := prevNext(u, more)
	d.Prev, d.Next = deref(prev), deref(next)
}

func apiURL(r *http.Request) string {
	u := APIPrefix + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// pagedResults runs a result list query with the page's paging.
func (s *server) pagedResults(r *http.Request, d *pageData, groups, testcases []string) error {
	list, limit, err := s.queryResults(r, groups, testcases)
	if err != nil {
		return err
	}
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	d.Results = viewResults(list)
	s.pageLinks(r, d, more)
	return nil
}

func (s *server) pageResults(w http.ResponseWriter, r *http.Request) {
	v, ok := s.cleanQuery(w, r)
	if !ok {
		return
	}
	d := &pageData{Title: "Results", API: apiURL(r), Action: "/results", Outcomes: s.outcomes, Form: map[string]string{}}
	for _, k := range []string{"item", "type", "testcases", "outcome", "since", "origin"} {
		d.Form[k] = v.Get(k)
	}
	if err := s.pagedResults(r, d, nil, nil); err != nil {
		var bad *badRequest
		if errors.As(err, &bad) {
			d.Error = bad.msg
			s.render(w, r, http.StatusBadRequest, "results", d)
			return
		}
		s.pageFail(w, r, "Results", err)
		return
	}
	s.render(w, r, http.StatusOK, "results", d)
}

func (s *server) pageLatest(w http.ResponseWriter, r *http.Request) {
	v, ok := s.cleanQuery(w, r)
	if !ok {
		return
	}
	title := "Latest results"
	if item := v.Get("item"); item != "" {
		title = item
	}
	d := &pageData{Title: title, API: apiURL(r), Item: v.Get("item"), Distinct: strings.Join(commaList(v.Get("_distinct_on")), ", ")}
	if d.Item != "" {
		d.History = "/results?item=" + url.QueryEscape(d.Item)
		if t := v.Get("type"); t != "" {
			d.History += "&type=" + url.QueryEscape(t)
		}
	}
	q, distinct, err := s.latestQuery(v)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	list, err := s.store.Latest(r.Context(), q, distinct)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	// One item's latest results are the item page: is this build OK?
	if items := commaList(v.Get("item")); len(items) == 1 && len(v["item:like"]) == 0 {
		if err := s.itemPage(r, d, items[0], v.Get("type"), list); err != nil {
			s.pageFail(w, r, title, err)
			return
		}
		s.render(w, r, http.StatusOK, "item", d)
		return
	}
	d.Results = viewResults(list)
	s.render(w, r, http.StatusOK, "latest", d)
}

func (s *server) pageResult(w http.ResponseWriter, r *http.Request) {
	title := "Result " + r.PathValue("id")
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.pageFail(w, r, title, ErrNotFound)
		return
	}
	res, err := s.store.Result(r.Context(), id)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	view := viewCheck(res)
	prev, worse, err := s.histories().regressionOf(r.Context(), res)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	if worse {
		view.Regression = viewPrev(prev)
	}
	s.render(w, r, http.StatusOK, "result", &pageData{Title: title, API: apiURL(r), Result: &view})
}

func (s *server) pageGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathValue(r, "uuid")
	title := "Group " + id
	if !ok {
		s.pageFail(w, r, title, ErrNotFound)
		return
	}
	g, err := s.store.Group(r.Context(), id)
	if err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	// The execution page is execdb's, which the central server mounts at
	// /executions/ on the same host: a relative link reaches it.
	gv := &groupView{UUID: g.UUID, Description: deref(g.Description), RefURL: deref(g.RefURL), Count: g.ResultsCount,
		Execution: "/executions/" + url.PathEscape(g.UUID)}
	d := &pageData{Title: title, API: APIPrefix + "/groups/" + url.PathEscape(id) + "/results", Group: gv}
	if r.URL.RawQuery != "" {
		d.API += "?" + r.URL.RawQuery
	}
	if err := s.pagedResults(r, d, []string{g.UUID}, nil); err != nil {
		s.pageFail(w, r, title, err)
		return
	}
	// The artifacts folder: configured, else the folder named by the uuid
	// in a result's log URL (…/artifacts/all/<uuid>/task_output/…).
	if s.opts.ArtifactsURL != "" {
		gv.Artifacts = strings.TrimSuffix(s.opts.ArtifactsURL, "/") + "/" + url.PathEscape(g.UUID) + "/"
	} else {
		for _, res := range d.Results {
			if i := strings.Index(res.RefURL, "/"+g.UUID+"/"); i >= 0 {
				gv.Artifacts = res.RefURL[:i+len(g.UUID)+2]
				break
			}
		}
	}
	if gv.Artifacts != "" {
		gv.Log = gv.Artifacts + runnerLog
	}
	// The group's own ref_url is shown only when it is not one of those
	// links again (without an ExecDB URL the reporter sets it to the
	// artifacts folder).
	if gv.RefURL == gv.Artifacts || gv.RefURL == gv.Log || s.sameExecution(r, gv.RefURL, g.UUID) {
		gv.RefURL = ""
	}
	s.render(w, r, http.StatusOK, "group", d)
}

func (s *server) pageTestcase(w http.ResponseWriter, r *http.Request) {
	rest, ok := pathValue(r, "name")
	name, _, valid := testcasePath(rest)
	if !ok || !valid {
		s.pageFail(w, r, "Not found", ErrNotFound)
		return
	}
	t, err := s.store.Testcase(r.Context(), name)
	if err != nil {
		s.pageFail(w, r, name, err)
		return
	}
	d := &pageData{Title: name, API: APIPrefix + "/testcases/" + pyQuote(name, hrefPathSafe, false) + "/results", Testcase: t}
	if r.URL.RawQuery != "" {
		d.API += "?" + r.URL.RawQuery
	}
	if err := s.pagedResults(r, d, nil, []string{t.Name}); err != nil {
		s.pageFail(w, r, name, err)
		return
	}
	s.render(w, r, http.StatusOK, "testcase", d)
}

func (s *server) pageTestcases(w http.ResponseWriter, r *http.Request) {
	v, ok := s.cleanQuery(w, r)
	if !ok {
		return
	}
	d := &pageData{Title: "Testcases", API: apiURL(r), Like: v.Get("name:like")}
	page, limit, err := pageLimit(v)
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	q := TestcaseQuery{Names: commaList(v.Get("name")), Offset: page * limit, Limit: limit + 1}
	if len(q.Names) == 0 {
		if q.NameLike, err = likePatterns("name:like", commaList(v.Get("name:like"))); err != nil {
			s.pageFail(w, r, d.Title, err)
			return
		}
	}
	list, err := s.store.Testcases(r.Context(), q)
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	for _, t := range list {
		d.Testcases = append(d.Testcases, testcaseView{Name: t.Name, RefURL: deref(t.RefURL)})
	}
	s.pageLinks(r, d, more)
	s.render(w, r, http.StatusOK, "testcases", d)
}

func (s *server) pageGroups(w http.ResponseWriter, r *http.Request) {
	v, ok := s.cleanQuery(w, r)
	if !ok {
		return
	}
	d := &pageData{Title: "Groups", API: apiURL(r)}
	page, limit, err := pageLimit(v)
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	q := GroupQuery{UUIDs: commaList(v.Get("uuid")), Offset: page * limit, Limit: limit + 1}
	if desc := commaList(v.Get("description")); len(desc) > 0 {
		q.Descriptions = desc
	} else {
		if q.DescriptionLike, err = likePatterns("description:like", commaList(v.Get("description:like"))); err != nil {
			s.pageFail(w, r, d.Title, err)
			return
		}
	}
	list, err := s.store.Groups(r.Context(), q)
	if err != nil {
		s.pageFail(w, r, d.Title, err)
		return
	}
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	for _, g := range list {
		d.Groups = append(d.Groups, groupView{UUID: g.UUID, Description: deref(g.Description), Count: g.ResultsCount})
	}
	s.pageLinks(r, d, more)
	s.render(w, r, http.StatusOK, "groups", d)
}

// sameExecution reports whether ref is the ExecDB link the reporter gives
// a group (<execdb_url>/jobs/<uuid>) on this very host, which redirects to
// the execution page the group page links already.
func (s *server) sameExecution(r *http.Request, ref, uuid string) bool {
	u, err := url.Parse(ref)
	if err != nil || u.EscapedPath() != "/jobs/"+url.PathEscape(uuid) {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	base, err := url.Parse(s.opts.BaseURL)
	return err == nil && s.opts.BaseURL != "" && u.Host == base.Host
}
