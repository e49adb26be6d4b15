package resultsdb

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// APIPrefix is where the API lives, as on a real ResultsDB.
const APIPrefix = "/api/v2.0"

// BaseOutcomes are the outcomes every ResultsDB accepts.
var BaseOutcomes = []string{"PASSED", "INFO", "FAILED", "NEEDS_INSPECTION"}

// Options configure the server.
type Options struct {
	// BaseURL is the public scheme://host[/prefix] that href, prev and next
	// links start with; empty means the URL the request came to (Host,
	// X-Forwarded-Host, X-Forwarded-Scheme or -Proto), as ResultsDB does.
	BaseURL string
	// Token, when set, must be sent as "Authorization: Bearer <token>" on
	// every write. Reads stay public.
	Token string
	// AdditionalOutcomes are accepted on top of BaseOutcomes.
	AdditionalOutcomes []string
	// Log gets one line per failed request; nil discards.
	Log *slog.Logger
	// MaxBodyBytes caps a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// ArtifactsURL is the public URL of the artifacts tree; group pages
	// link to <ArtifactsURL>/<uuid>/. Empty: the group's ref_url.
	ArtifactsURL string
	// Events queues a resultsdb.result.new message for every new result,
	// for a Publisher to send.
	Events bool
	// Origins tells the submitting systems apart (origins.go): origin
	// tokens write (each only its origin's results), results show their
	// origin, origin= filters by it, and KCIDB submissions are taken at
	// /api/v2.0/submissions. Off, the server answers as ResultsDB 2.2
	// does, to the byte (origin= is then a data filter, as there).
	Origins bool
	// MaxSubmissionBytes caps a KCIDB submission and a batch of results;
	// 0 means 32 MiB.
	MaxSubmissionBytes int64
	// Origin is the origin of writes made with Token, or with no token
	// when Token is empty; empty means DefaultOrigin.
	Origin string
}

type server struct {
	store    Store
	opts     Options
	outcomes []string
	log      *slog.Logger
}

// NewServer serves the ResultsDB API v2.0 under /api/v2.0, /healthcheck,
// and the QA web pages under /.
func NewServer(store Store, opts Options) http.Handler {
	s := &server{store: store, opts: opts, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.opts.MaxBodyBytes <= 0 {
		s.opts.MaxBodyBytes = 1 << 20
	}
	s.opts.BaseURL = strings.TrimSuffix(s.opts.BaseURL, "/")
	if s.opts.Origin == "" {
		s.opts.Origin = DefaultOrigin
	}
	s.outcomes = append(append([]string{}, BaseOutcomes...), upperAll(opts.AdditionalOutcomes)...)

	mux := http.NewServeMux()
	api := func(pattern string, get, post apiHandler) {
		mux.Handle(APIPrefix+pattern, s.methods(get, post))
	}
	api("", s.landing, nil)
	api("/{$}", s.landing, nil)
	api("/results", s.getResults, s.postResult)
	api("/results/latest", s.getLatest, nil)
	api("/results/batch", nil, s.postResultBatch)
	api("/results/{id}", s.getResult, nil)
	api("/groups", s.getGroups, s.postGroup)
	api("/groups/{uuid}", s.getGroup, nil)
	api("/groups/{uuid}/results", s.getGroupResults, nil)
	api("/testcases", s.getTestcases, s.postTestcase)
	if opts.Origins {
		api("/submissions", s.submissionsInfo, s.postSubmission)
	}
	// Testcase names may hold '/' (Fedora CI's
	// fedora-ci.koji-build./plans/basic.functional), so the name is the
	// rest of the path, and a rest ending in /results asks for its results,
	// as ResultsDB's <path:testcase_name> routes have it.
	api("/testcases/{name...}", s.testcaseRoute, nil)
	// Ours only: results worse than on the package's previous build.
	api("/regressions", s.getRegressions, nil)
	api("/healthcheck", s.healthcheck, nil)
	api("/", func(w http.ResponseWriter, r *http.Request) error {
		return &statusError{code: http.StatusNotFound, msg: "Not found"}
	}, nil)
	mux.Handle("/healthcheck", s.methods(s.healthcheck, nil))
	s.pageRoutes(mux)
	return s.accessLog(mux)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// accessLog writes one debug line per request.
func (s *server) accessLog(h http.Handler) http.Handler {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.log.Debug("request", "method", r.Method, "url", r.URL.String(), "status", rec.code,
			"ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

func upperAll(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" && !contains(out, s) && !contains(BaseOutcomes, s) {
			out = append(out, s)
		}
	}
	return out
}

// apiHandler answers one API request; a returned error becomes a JSON
// {"message": …} with its status.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

// statusError is an error answered with a given status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func (s *server) methods(get, post apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h apiHandler
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h = get
		case http.MethodPost:
			if post != nil {
				h = s.authorized(post)
			}
		}
		if h == nil {
			var allow []string
			if get != nil {
				allow = append(allow, "GET", "HEAD")
			}
			if post != nil {
				allow = append(allow, "POST")
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "The method is not allowed for the requested URL."})
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// writerKey is where authorized leaves the writer of a request.
type writerKey struct{}

// writer is whom a write is made for: an origin, with a token or without.
type writer struct {
	origin string
	token  bool
}

// writerOrigin is the origin the request's token writes for.
func writerOrigin(r *http.Request) string {
	w, _ := r.Context().Value(writerKey{}).(writer)
	return w.origin
}

// authorized checks the bearer token of a write and notes whose origin it
// writes for: resultsdb.token and no token at all (when none is
// configured) write for the default origin, an origin token for its own.
func (s *server) authorized(h apiHandler) apiHandler {
	if s.opts.Token == "" && !s.opts.Origins {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Get("Authorization")
		scheme, token, _ := strings.Cut(auth, " ")
		token = strings.TrimSpace(token)
		origin, byToken := s.opts.Origin, true
		switch {
		case s.opts.Token == "" && (auth == "" || !strings.EqualFold(scheme, "Bearer")):
			// Writes are open; they are the default origin's.
			byToken = false
		case auth == "" || !strings.EqualFold(scheme, "Bearer"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="resultsdb"`)
			return &statusError{code: http.StatusUnauthorized, msg: "Authorization required: send 'Authorization: Bearer <token>'"}
		case s.opts.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) == 1:
		case s.opts.Origins && strings.HasPrefix(token, OriginTokenPrefix):
			o, err := s.store.TokenOrigin(r.Context(), token)
			if errors.Is(err, ErrBadToken) || errors.Is(err, ErrRevokedToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="resultsdb", error="invalid_token"`)
				msg := "Invalid bearer token"
				if errors.Is(err, ErrRevokedToken) {
					msg = "Invalid bearer token: it was revoked"
				}
				return &statusError{code: http.StatusUnauthorized, msg: msg}
			}
			if err != nil {
				return err
			}
			origin = o
		case s.opts.Token == "":
			// Open writes ignore a token that claims no origin, as they
			// did before origins: a reporter configured with a token
			// still reports to a server that asks for none.
			byToken = false
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="resultsdb", error="invalid_token"`)
			return &statusError{code: http.StatusUnauthorized, msg: "Invalid bearer token"}
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), writerKey{}, writer{origin: origin, token: byToken})))
	}
}

// checkOrigin refuses a write that names an origin other than the one its
// token writes for.
func (s *server) checkOrigin(r *http.Request, named string) error {
	who, _ := r.Context().Value(writerKey{}).(writer)
	if who.origin == "" {
		who.origin = s.opts.Origin
	}
	if named == who.origin {
		return nil
	}
	how := "this token writes"
	if !who.token {
		how = "writes without a token are"
	}
	return &statusError{code: http.StatusForbidden, msg: fmt.Sprintf(
		"Forbidden: %s results of origin %s only, not of origin %s; origin %s needs a token of its own (taskotron resultsdb token add %s)",
		how, pyRepr(who.origin), pyRepr(prefix(named)), pyRepr(prefix(named)), prefix(named))}
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bad *badRequest
	var st *statusError
	switch {
	case errors.As(err, &bad):
		s.log.Info("bad request", "method", r.Method, "url", r.URL.String(), "error", bad.msg)
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": bad.msg})
	case errors.As(err, &st):
		if st.code >= 500 {
			s.log.Error("request failed", "method", r.Method, "url", r.URL.String(), "error", st.msg)
		}
		writeJSON(w, st.code, map[string]string{"message": st.msg})
	case errors.Is(err, context.Canceled):
		// The client went away; nobody is left to answer.
	default:
		s.log.Error("request failed", "method", r.Method, "url", r.URL.String(), "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// URLs keep their '&' as ResultsDB writes them.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("{\"message\": \"Internal Server Error\"}\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func query(r *http.Request) (url.Values, error) { return parseQuery(r.URL.RawQuery) }

// pathValue is a name from the request path, decoded as Werkzeug does
// (bytes that are not UTF-8 become U+FFFD). ok is false when it holds a
// NUL: nothing is stored under such a name, and PostgreSQL cannot even be
// asked for it.
func pathValue(r *http.Request, key string) (string, bool) {
	v := pyReplace(r.PathValue(key))
	return v, strings.IndexByte(v, 0) < 0
}

// JSON shapes (reference §6.4).

type testcaseJSON struct {
	Href   string  `json:"href"`
	Name   string  `json:"name"`
	RefURL *string `json:"ref_url"`
}

type groupJSON struct {
	Description  *string `json:"description"`
	Href         string  `json:"href"`
	RefURL       *string `json:"ref_url"`
	Results      string  `json:"results"`
	ResultsCount int64   `json:"results_count"`
	UUID         string  `json:"uuid"`
}

type resultJSON struct {
	Data       map[string][]string `json:"data"`
	Groups     []string            `json:"groups"`
	Href       string              `json:"href"`
	ID         int64               `json:"id"`
	Note       *string             `json:"note"`
	Outcome    string              `json:"outcome"`
	RefURL     *string             `json:"ref_url"`
	SubmitTime string              `json:"submit_time"`
	Testcase   testcaseJSON        `json:"testcase"`
	// Origin is shown when the server tells origins apart.
	Origin string `json:"origin,omitempty"`
}

type pageJSON struct {
	Data any     `json:"data"`
	Next *string `json:"next"`
	Prev *string `json:"prev"`
}

// writePage writes one page of a listing. The store was asked for one row
// more than the page holds: its presence is what makes a next link.
func writePage[T, J any](s *server, w http.ResponseWriter, r *http.Request, list []T, limit int, out func(base string, item T) J) {
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	base := s.base(r)
	data := make([]J, len(list))
	for i, item := range list {
		data[i] = out(base, item)
	}
	prev, next := prevNext(s.requestURL(r), more)
	writeJSON(w, http.StatusOK, pageJSON{Prev: prev, Next: next, Data: data})
}

func testcaseOut(base string, t Testcase) testcaseJSON {
	return testcaseJSON{Name: t.Name, RefURL: t.RefURL, Href: base + APIPrefix + "/testcases/" + pyQuote(t.Name, hrefPathSafe, false)}
}

func groupOut(base string, g Group) groupJSON {
	return groupJSON{
		UUID: g.UUID, Description: g.Description, RefURL: g.RefURL, ResultsCount: g.ResultsCount,
		Results: base + APIPrefix + "/results?groups=" + pyQuote(g.UUID, hrefQuerySafe, true),
		Href:    base + APIPrefix + "/groups/" + pyQuote(g.UUID, hrefPathSafe, false),
	}
}

func resultOut(base string, r Result) resultJSON {
	data := map[string][]string{}
	for _, p := range r.Data {
		data[p.Key] = append(data[p.Key], p.Value)
	}
	groups := r.Groups
	if groups == nil {
		groups = []string{}
	}
	return resultJSON{
		ID: r.ID, Groups: groups, Testcase: testcaseOut(base, r.Testcase),
		SubmitTime: isoformat(r.SubmitTime), Outcome: r.Outcome, Note: r.Note, RefURL: r.RefURL,
		Data: data, Href: base + APIPrefix + "/results/" + strconv.FormatInt(r.ID, 10), Origin: r.Origin,
	}
}

// resultOut is a result as this server shows it.
func (s *server) resultOut(base string, r Result) resultJSON {
	j := resultOut(base, r)
	if !s.opts.Origins {
		j.Origin = ""
	}
	return j
}

func (s *server) resultsOut(base string, list []Result) []resultJSON {
	out := make([]resultJSON, len(list))
	for i, r := range list {
		out[i] = s.resultOut(base, r)
	}
	return out
}

// Handlers.

func (s *server) landing(w http.ResponseWriter, r *http.Request) error {
	base := s.base(r) + APIPrefix
	writeJSON(w, http.StatusMultipleChoices, map[string]any{
		"message": "Everything is fine. But choose wisely, for while the true Grail will bring you life, " +
			"the false Grail will take it from you.",
		"documentation": "http://docs.resultsdb20.apiary.io/",
		"groups":        base + "/groups",
		"results":       base + "/results",
		"testcases":     base + "/testcases",
		"outcomes":      s.outcomes,
	})
	return nil
}

func (s *server) healthcheck(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("health check failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Unable to communicate with database"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Health check OK"})
	return nil
}

// listResults answers /results and the group and testcase result lists.
func (s *server) listResults(w http.ResponseWriter, r *http.Request, groups, testcases []string) error {
	list, limit, err := s.queryResults(r, groups, testcases)
	if err != nil {
		return err
	}
	writePage(s, w, r, list, limit, s.resultOut)
	return nil
}

// queryResults runs the result list query a request asks for, the API's and
// the pages' alike, with one row more than the page holds (see writePage).
// groups and testcases, when not nil, come from the path and win over the query.
func (s *server) queryResults(r *http.Request, groups, testcases []string) ([]Result, int, error) {
	v, err := query(r)
	if err != nil {
		return nil, 0, err
	}
	page, limit, err := pageLimit(v)
	if err != nil {
		return nil, 0, err
	}
	q, _, err := parseResultQuery(v, s.outcomes, s.opts.Origins)
	if err != nil {
		return nil, 0, err
	}
	if groups != nil {
		q.Groups = groups
	}
	if testcases != nil {
		q.Testcases = testcases
	}
	q.Offset, q.Limit = page*limit, limit+1
	list, err := s.store.Results(r.Context(), q)
	return list, limit, err
}

func (s *server) getResults(w http.ResponseWriter, r *http.Request) error {
	return s.listResults(w, r, nil, nil)
}

func (s *server) getGroupResults(w http.ResponseWriter, r *http.Request) error {
	id, ok := pathValue(r, "uuid")
	if !ok {
		return &statusError{code: http.StatusNotFound, msg: "Group not found: " + id}
	}
	if _, err := s.store.Group(r.Context(), id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return &statusError{code: http.StatusNotFound, msg: "Group not found: " + id}
		}
		return err
	}
	return s.listResults(w, r, []string{id}, nil)
}

// testcasePath splits the rest of a /testcases/ path into the testcase
// name and whether its results are asked for. ok is false for a path no
// testcase can have: an empty name, or one starting with '/' (Werkzeug's
// path converter needs a first character other than '/').
func testcasePath(rest string) (name string, results, ok bool) {
	name, results = strings.CutSuffix(rest, "/results")
	return name, results, name != "" && name[0] != '/'
}

func (s *server) testcaseRoute(w http.ResponseWriter, r *http.Request) error {
	rest, ok := pathValue(r, "name")
	if !ok {
		return &statusError{code: http.StatusNotFound, msg: "Testcase not found"}
	}
	name, results, ok := testcasePath(rest)
	if !ok {
		return &statusError{code: http.StatusNotFound, msg: "Not found"}
	}
	if results {
		return s.getTestcaseResults(w, r, name)
	}
	return s.getTestcase(w, r, name)
}

func (s *server) getTestcaseResults(w http.ResponseWriter, r *http.Request, name string) error {
	if _, err := s.store.Testcase(r.Context(), name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return &statusError{code: http.StatusNotFound, msg: "Testcase not found"}
		}
		return err
	}
	return s.listResults(w, r, nil, []string{name})
}

// latestQuery reads the parameters of /results/latest.
func (s *server) latestQuery(v url.Values) (ResultQuery, []string, error) {
	q, filtered, err := parseResultQuery(v, s.outcomes, s.opts.Origins)
	if err != nil {
		return q, nil, err
	}
	q.Outcomes = nil
	distinct := commaList(v.Get("_distinct_on"))
	if len(distinct) > 0 && !filtered {
		return q, nil, badf("Please, provide at least one filter beside '_distinct_on'")
	}
	if len(distinct) > maxDistinctOn {
		return q, nil, badf("Malformed Request: _distinct_on: at most %d keys, got %d", maxDistinctOn, len(distinct))
	}
	return q, distinct, nil
}

func (s *server) getLatest(w http.ResponseWriter, r *http.Request) error {
	v, err := query(r)
	if err != nil {
		return err
	}
	q, distinct, err := s.latestQuery(v)
	if err != nil {
		return err
	}
	list, err := s.store.Latest(r.Context(), q, distinct)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": s.resultsOut(s.base(r), list)})
	return nil
}

func (s *server) getResult(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return &statusError{code: http.StatusNotFound, msg: "Result not found"}
	}
	res, err := s.store.Result(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &statusError{code: http.StatusNotFound, msg: "Result not found"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.resultOut(s.base(r), res))
	return nil
}

func (s *server) postResult(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	in, err := parseResultPost(body, s.outcomes)
	if err != nil {
		return err
	}
	in.Origin = s.opts.Origin
	if s.opts.Origins {
		if in.Origin, err = s.postOrigin(r, body); err != nil {
			return err
		}
	}
	in.Event = s.opts.Events
	res, err := s.store.CreateResult(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.resultOut(s.base(r), res))
	return nil
}

// postOrigin is the origin a result post is stored under: the one its
// token writes for, which the body's "origin", when given, must name.
func (s *server) postOrigin(r *http.Request, body map[string]any) (string, error) {
	origin := writerOrigin(r)
	named, set, err := optString(body, "origin", "origin")
	if err != nil || !set || named == nil {
		return origin, err
	}
	return origin, s.checkOrigin(r, *named)
}

func (s *server) getGroups(w http.ResponseWriter, r *http.Request) error {
	v, err := query(r)
	if err != nil {
		return err
	}
	page, limit, err := pageLimit(v)
	if err != nil {
		return err
	}
	q := GroupQuery{UUIDs: commaList(v.Get("uuid")), Offset: page * limit, Limit: limit + 1}
	if d := commaList(v.Get("description")); len(d) > 0 {
		q.Descriptions = d
	} else {
		if q.DescriptionLike, err = likePatterns("description:like", commaList(v.Get("description:like"))); err != nil {
			return err
		}
	}
	list, err := s.store.Groups(r.Context(), q)
	if err != nil {
		return err
	}
	writePage(s, w, r, list, limit, groupOut)
	return nil
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request) error {
	id, ok := pathValue(r, "uuid")
	if !ok {
		return &statusError{code: http.StatusNotFound, msg: "Group not found"}
	}
	g, err := s.store.Group(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &statusError{code: http.StatusNotFound, msg: "Group not found"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupOut(s.base(r), g))
	return nil
}

func (s *server) postGroup(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var g GroupUpdate
	id, _, err := optString(body, "uuid", "uuid")
	if err != nil {
		return err
	}
	if id != nil && *id != "" {
		g.UUID = *id
	} else {
		g.UUID = newUUID()
	}
	if err := checkName("uuid", g.UUID); err != nil {
		return err
	}
	// As ResultsDB: only non-empty values overwrite.
	if g.Description, _, err = optString(body, "description", "description"); err != nil {
		return err
	}
	g.SetDescription = g.Description != nil && *g.Description != ""
	if g.RefURL, _, err = optString(body, "ref_url", "ref_url"); err != nil {
		return err
	}
	g.SetRefURL = g.RefURL != nil && *g.RefURL != ""
	if !g.SetDescription {
		g.Description = nil
	}
	if !g.SetRefURL {
		g.RefURL = nil
	}
	for _, err := range []error{noNUL("uuid", g.UUID), noNULPtr("description", g.Description), noNULPtr("ref_url", g.RefURL)} {
		if err != nil {
			return err
		}
	}
	saved, err := s.store.SaveGroup(r.Context(), g)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, groupOut(s.base(r), saved))
	return nil
}

func (s *server) getTestcases(w http.ResponseWriter, r *http.Request) error {
	v, err := query(r)
	if err != nil {
		return err
	}
	page, limit, err := pageLimit(v)
	if err != nil {
		return err
	}
	q := TestcaseQuery{Offset: page * limit, Limit: limit + 1}
	if n := commaList(v.Get("name")); len(n) > 0 {
		q.Names = n
	} else {
		if q.NameLike, err = likePatterns("name:like", commaList(v.Get("name:like"))); err != nil {
			return err
		}
	}
	list, err := s.store.Testcases(r.Context(), q)
	if err != nil {
		return err
	}
	writePage(s, w, r, list, limit, testcaseOut)
	return nil
}

func (s *server) getTestcase(w http.ResponseWriter, r *http.Request, name string) error {
	t, err := s.store.Testcase(r.Context(), name)
	if errors.Is(err, ErrNotFound) {
		return &statusError{code: http.StatusNotFound, msg: "Testcase not found"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, testcaseOut(s.base(r), t))
	return nil
}

func (s *server) postTestcase(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	nv, ok := body["name"]
	if !ok || nv == nil {
		return badf("Malformed Request: name: missing required parameter in the JSON body")
	}
	name, ok := nv.(string)
	if !ok {
		return badf("Malformed Request: name must be a string, not %s", jsonType(nv))
	}
	if name == "" {
		return badf("Malformed Request: name must not be empty")
	}
	if err := checkName("name", name); err != nil {
		return err
	}
	t := TestcaseUpdate{Name: name}
	if t.RefURL, _, err = optString(body, "ref_url", "ref_url"); err != nil {
		return err
	}
	t.SetRefURL = t.RefURL != nil
	for _, err := range []error{noNUL("name", t.Name), noNULPtr("ref_url", t.RefURL)} {
		if err != nil {
			return err
		}
	}
	saved, err := s.store.SaveTestcase(r.Context(), t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, testcaseOut(s.base(r), saved))
	return nil
}
