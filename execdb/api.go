package execdb

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// APIPrefix is where the executions API lives, beside ResultsDB's API
// (none of whose routes it takes).
const APIPrefix = "/api/v2.0"

// Options configure the HTTP side.
type Options struct {
	// Token, when set, is required as a bearer token for writes (events,
	// logs).
	Token string
	Log   *slog.Logger
	// MaxWait bounds a log read that waits for more (default 30 s).
	MaxWait time.Duration
	// ArtifactsDir, when set, takes uploaded artifacts (one folder per
	// execution uuid); MaxArtifacts bounds one upload (default 256 MiB).
	ArtifactsDir string
	MaxArtifacts int64
	// AuthorizeLog, when set, may let a log write through that lacks Token
	// (a lab's token for the attempt it holds a lease on); it answers
	// whether the request may write that attempt's log.
	AuthorizeLog func(r *http.Request, uuid string, attempt int) bool
	// BaseURL, when set, starts the links of the list (prev, next), as
	// resultsdb.base_url does ResultsDB's; otherwise they follow the
	// request (Host, X-Forwarded-Host, X-Forwarded-Proto).
	BaseURL string
	// Results, when set, lists an execution's results (its ResultsDB
	// group) for its page.
	Results func(ctx context.Context, uuid string) ([]ResultSummary, error)
}

// ResultSummary is one result of an execution, as its page lists it.
type ResultSummary struct {
	ID       int64
	Testcase string
	Outcome  string
	Note     string
	Item     string
	Arch     string
	// RefURL is the result's own link (its artifact, say).
	RefURL string
}

// Handler serves the executions API and pages.
type Handler struct {
	store *Store
	opts  Options
	log   *slog.Logger
}

// NewHandler makes the handler over a store.
func NewHandler(store *Store, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.MaxArtifacts <= 0 {
		o.MaxArtifacts = 256 << 20
	}
	return &Handler{store: store, opts: o, log: o.Log}
}

// Mount adds the routes to mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+APIPrefix+"/executions/events", h.postEvents)
	mux.HandleFunc("GET "+APIPrefix+"/executions", h.list)
	mux.HandleFunc("GET "+APIPrefix+"/executions/{uuid}", h.get)
	mux.HandleFunc("GET "+APIPrefix+"/queue", h.queue)
	mux.HandleFunc("PUT "+APIPrefix+"/executions/{uuid}/logs/{attempt}/{name}", h.putLog)
	mux.HandleFunc("GET "+APIPrefix+"/executions/{uuid}/logs/{attempt}/{name}", h.getLog)
	mux.HandleFunc("POST "+APIPrefix+"/executions/{uuid}/logs/{attempt}/closed", h.closeLogs)
	mux.HandleFunc("PUT "+APIPrefix+"/executions/{uuid}/artifacts", h.putArtifacts)
	h.mountPages(mux)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"message": fmt.Sprintf(format, a...)})
}

func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) == 1 {
		return true
	}
	fail(w, http.StatusUnauthorized, "a valid bearer token is needed to write")
	return false
}

// maxEvents bounds one POST of events.
const maxEvents = 1000

func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail(w, http.StatusUnsupportedMediaType, "send events as application/json")
		return
	}
	var evs []contract.ExecutionEvent
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	if err := dec.Decode(&evs); err != nil {
		fail(w, http.StatusBadRequest, "events: want a JSON list of execution events: %s", oneLine(err.Error()))
		return
	}
	if len(evs) > maxEvents {
		fail(w, http.StatusRequestEntityTooLarge, "events: at most %d in one request, got %d", maxEvents, len(evs))
		return
	}
	for _, ev := range evs {
		if err := CheckEvent(ev); err != nil {
			fail(w, http.StatusBadRequest, "%s", err)
			return
		}
	}
	n, err := h.store.Apply(r.Context(), evs)
	if err != nil {
		h.log.Error("execution events not stored", "events", len(evs), "err", err)
		fail(w, http.StatusInternalServerError, "execution events not stored")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"applied": n, "received": len(evs)})
}

// query reads the filters of a list request, ResultsDB-style: page (from
// 0), limit, and comma-separated values.
func readQuery(v url.Values) (Query, int, error) {
	var q Query
	limit, page := 20, 0
	var err error
	if s := v.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return q, 0, fmt.Errorf("limit %q: want 1 to 1000", s)
		}
	}
	if s := v.Get("page"); s != "" {
		if page, err = strconv.Atoi(s); err != nil || page > 1e6 {
			return q, 0, fmt.Errorf("page %q: want a number from 0", s)
		}
		page = max(page, 0)
	}
	for _, st := range strings.Split(v.Get("state"), ",") {
		if st = strings.TrimSpace(st); st == "" {
			continue
		}
		if !knownState(st) {
			return q, 0, fmt.Errorf("state %q: want one of %s", st, strings.Join(States, ", "))
		}
		q.States = append(q.States, st)
	}
	q.Item, q.TaskName, q.Arch = v.Get("item"), v.Get("taskname"), v.Get("arch")
	if s := v.Get("since"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return q, 0, fmt.Errorf("since %q: want a time like 2026-12-02T10:00:00Z or a duration like 1h", s)
		}
		q.Since = t
	}
	q.Limit, q.Offset = limit+1, page*limit // one more: is there a next page?
	return q, page, nil
}

func parseTime(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

// Page is a page of executions, with links to its neighbours.
type Page struct {
	Data []Execution `json:"data"`
	Prev *string     `json:"prev"`
	Next *string     `json:"next"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q, page, err := readQuery(r.URL.Query())
	if err != nil {
		fail(w, http.StatusBadRequest, "%s", err)
		return
	}
	limit := q.Limit - 1
	data, err := h.store.List(r.Context(), q)
	if err != nil {
		h.serverError(w, "executions", err)
		return
	}
	p := Page{Data: data}
	link := func(page int) *string {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(page))
		v.Set("limit", strconv.Itoa(limit))
		base := requestBase(r)
		if h.opts.BaseURL != "" {
			base = strings.TrimRight(h.opts.BaseURL, "/")
		}
		u := base + r.URL.Path + "?" + v.Encode()
		return &u
	}
	if len(data) > limit {
		p.Data, p.Next = data[:limit], link(page+1)
	}
	if page > 0 {
		p.Prev = link(page - 1)
	}
	writeJSON(w, http.StatusOK, p)
}

// requestBase is the scheme and host the request came to.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" && !strings.ContainsAny(fh, "/ ,") {
		host = fh
	}
	return scheme + "://" + host
}

func (h *Handler) serverError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.log.Error("executions API", "what", what, "err", err)
	fail(w, http.StatusInternalServerError, "%s: the database failed", what)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	d, err := h.store.Get(r.Context(), r.PathValue("uuid"))
	if errors.Is(err, ErrNotFound) {
		fail(w, http.StatusNotFound, "execution %q not found", r.PathValue("uuid"))
		return
	}
	if err != nil {
		h.serverError(w, "execution", err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) queue(w http.ResponseWriter, r *http.Request) {
	q, err := h.store.Queue(r.Context(), 500)
	if err != nil {
		h.serverError(w, "queue", err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

var logNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

func logRef(r *http.Request) (attempt int, name string, err error) {
	attempt, err = strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 0 || attempt > 1000 {
		return 0, "", fmt.Errorf("attempt %q: want a number from 0 to 1000", r.PathValue("attempt"))
	}
	name = r.PathValue("name")
	if !logNameRe.MatchString(name) {
		return 0, "", fmt.Errorf("log name %q: use letters, digits, '.', '_' and '-'", name)
	}
	return attempt, name, nil
}

// maxChunk bounds one append and one read.
const maxChunk = 4 << 20

func (h *Handler) putLog(w http.ResponseWriter, r *http.Request) {
	attempt, name, err := logRef(r)
	if a := h.opts.AuthorizeLog; a != nil && err == nil && a(r, r.PathValue("uuid"), attempt) {
		// Let through by the plug-in.
	} else if !h.authorized(w, r) {
		return
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%s", err)
		return
	}
	pos, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || pos < 0 {
		fail(w, http.StatusBadRequest, "offset %q: want the byte offset the data starts at", r.URL.Query().Get("offset"))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxChunk+1))
	if err != nil {
		fail(w, http.StatusBadRequest, "log data: %s", oneLine(err.Error()))
		return
	}
	if len(data) > maxChunk {
		fail(w, http.StatusRequestEntityTooLarge, "log data: at most %d bytes in one request", maxChunk)
		return
	}
	size, err := h.store.AppendLog(r.Context(), r.PathValue("uuid"), attempt, name, pos, data)
	var oe *OffsetError
	switch {
	case errors.As(err, &oe):
		writeJSON(w, http.StatusConflict, map[string]any{"message": oe.Error(), "size": oe.Size})
	case err != nil:
		h.serverError(w, "log", err)
	default:
		writeJSON(w, http.StatusOK, map[string]int64{"size": size})
	}
}

// closeLogs is the shipper's word that an attempt's logs are whole.
func (h *Handler) closeLogs(w http.ResponseWriter, r *http.Request) {
	attempt, err := strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 0 || attempt > 1000 {
		fail(w, http.StatusBadRequest, "attempt %q: want a number from 0 to 1000", r.PathValue("attempt"))
		return
	}
	if a := h.opts.AuthorizeLog; a != nil && a(r, r.PathValue("uuid"), attempt) {
		// Let through by the plug-in.
	} else if !h.authorized(w, r) {
		return
	}
	if err := h.store.CloseLogs(r.Context(), r.PathValue("uuid"), attempt); err != nil {
		h.serverError(w, "log", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"closed": true})
}

// getLog returns a log from ?offset= on. With ?wait=DURATION it waits, at
// most that long, for data past the offset while the attempt runs.
// X-Log-Size is the log's size; X-Log-Final says no more will come (the
// attempt's shipper closed its logs, or its worker was lost, or it ended a
// while ago, and everything is there).
func (h *Handler) getLog(w http.ResponseWriter, r *http.Request) {
	attempt, name, err := logRef(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%s", err)
		return
	}
	uuid := r.PathValue("uuid")
	var pos int64
	if s := r.URL.Query().Get("offset"); s != "" {
		if pos, err = strconv.ParseInt(s, 10, 64); err != nil || pos < 0 {
			fail(w, http.StatusBadRequest, "offset %q: want a byte offset", s)
			return
		}
	}
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			fail(w, http.StatusBadRequest, "wait %q: want a duration like 10s", s)
			return
		}
	}
	deadline := time.Now().Add(min(wait, h.opts.MaxWait))
	for {
		changed := h.store.Changed()
		data, size, err := h.store.ReadLog(r.Context(), uuid, attempt, name, pos, maxChunk)
		if err != nil && !errors.Is(err, ErrNotFound) {
			h.serverError(w, "log", err)
			return
		}
		final, ferr := h.store.logsFinal(r.Context(), uuid, attempt)
		if ferr != nil {
			h.serverError(w, "log", ferr)
			return
		}
		if errors.Is(err, ErrNotFound) && final {
			fail(w, http.StatusNotFound, "execution %q has no log %q for attempt %d", uuid, name, attempt)
			return
		}
		if len(data) > 0 || final || !time.Now().Before(deadline) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Log-Size", strconv.FormatInt(size, 10))
			w.Header().Set("X-Log-Final", strconv.FormatBool(final && pos+int64(len(data)) >= min(size, MaxLog)))
			w.WriteHeader(http.StatusOK)
			w.Write(data)
			return
		}
		// Another server on the same database would not wake us: look
		// again now and then.
		select {
		case <-changed:
		case <-time.After(500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
