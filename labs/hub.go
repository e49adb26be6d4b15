package labs

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/results"
	"github.com/taskotron-go/taskotron/runner"
)

// APIPrefix is where the labs API lives, below the central server's API.
const APIPrefix = "/api/v2.0/labs"

// HubOptions configure the central server's side of the labs.
type HubOptions struct {
	Store *Store
	// Execs, when set, records the state changes of every request (queued,
	// running in a lab, finished) as executions.
	Execs *execdb.Store
	// Reporter delivers labs' results (ResultsDB, Bodhi): the labs hold no
	// secret of their own.
	Reporter *reporter.Reporter
	// Checkout serves the tasks from the central server's mirror.
	Checkout *checkout.Checkout
	// ArtifactsDir takes each run's artifacts (one folder per request id).
	ArtifactsDir string
	// AdminToken, when set, is required to put, cancel and remove.
	AdminToken string
	// LeaseTimeout: a lease not renewed for this long is lost (default 1 min).
	LeaseTimeout time.Duration
	// PollWait bounds a long poll (default 30 s).
	PollWait time.Duration
	// MaxAttempts: a request whose labs were lost this many times ends
	// CRASHED (default 3).
	MaxAttempts int
	// MaxArtifacts bounds one run's artifacts (default 256 MiB).
	MaxArtifacts int64
	// Retention: requests that ended longer ago are deleted (0 keeps them),
	// as their executions are (execdb.retention).
	Retention time.Duration
	// Namespaces, when set, is the result namespace allowlist, checked here
	// again: a lab's word is not taken for it.
	Namespaces *results.Namespaces
	Log        *slog.Logger
}

// Hub is the central server's side of the labs: the request queue, the
// boards, leases and lab tokens, over HTTP.
type Hub struct {
	opts  HubOptions
	store *Store
	log   *slog.Logger

	// waiters are the long polls waiting, oldest first: a queued request
	// wakes the oldest one whose board it can go to (not all of them, which
	// would all race for it); polls also look again every second, for the
	// other servers on the same database.
	mu      sync.Mutex
	waiters []*waiter
	// swept is when a poll last looked for expired leases (unix µs).
	swept atomic.Int64
}

// NewHub makes the hub.
func NewHub(o HubOptions) *Hub {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = time.Minute
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.MaxArtifacts <= 0 {
		o.MaxArtifacts = 256 << 20
	}
	return &Hub{opts: o, store: o.Store, log: o.Log}
}

// ServerParts are what the central server shares with its hub.
type ServerParts struct {
	Execs *execdb.Store
	// ArtifactsDir is the server's artifacts tree (empty: runner.artifacts_dir).
	ArtifactsDir string
	// ResultsDBURL is where results go when resultsdb.url is empty: the
	// server itself.
	ResultsDBURL string
	// ResultsDBToken is sent to it when resultsdb.token is empty.
	ResultsDBToken string
}

// HubFromConfig builds the hub of a central server from the configuration:
// its store (labs.db), the reporter of labs' results (spool labs.spool),
// the task checkout (runner.mirror).
func HubFromConfig(ctx context.Context, cfg config.Config, log *slog.Logger, p ServerParts) (*Hub, error) {
	cfg = cfg.Resolved()
	store, err := Open(ctx, cfg.Labs.DB)
	if err != nil {
		return nil, fmt.Errorf("labs.db: %w", err)
	}
	ro := reporter.OptionsFromConfig(cfg, log)
	ro.SpoolDir = cfg.Labs.Spool
	if cfg.ResultsDB.URL == "" && p.ResultsDBURL != "" {
		ro.ResultsDBURL = p.ResultsDBURL
		if ro.Token == "" {
			ro.Token = p.ResultsDBToken
		}
	}
	rep, err := reporter.New(ro)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("labs reporter: %w", err)
	}
	co, err := runner.NewCheckout(cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	o := HubOptions{Store: store, Execs: p.Execs, Reporter: rep, Checkout: co, ArtifactsDir: p.ArtifactsDir,
		AdminToken: cfg.ExecDB.Token, LeaseTimeout: cfg.Labs.LeaseTimeout, PollWait: cfg.Labs.PollWait,
		MaxAttempts: cfg.Runner.MaxAttempts, MaxArtifacts: cfg.ExecDB.MaxArtifacts, Retention: cfg.ExecDB.Retention, Log: log.With("role", "labs")}
	if o.ArtifactsDir == "" {
		o.ArtifactsDir = cfg.Runner.ArtifactsDir
	}
	if f := cfg.Reporter.Namespaces; f != "" {
		if o.Namespaces, err = results.LoadNamespaces(f); err != nil {
			store.Close()
			return nil, err
		}
	}
	return NewHub(o), nil
}

// Store is the hub's store.
func (h *Hub) Store() *Store { return h.store }

// Close closes the store.
func (h *Hub) Close() error { return h.store.Close() }

// waiter is a long poll waiting for work its board offers.
type waiter struct {
	offers Labels
	ch     chan struct{}
	woken  bool
}

func (h *Hub) enlist(offers Labels) *waiter {
	w := &waiter{offers: offers, ch: make(chan struct{}, 1)}
	h.mu.Lock()
	h.waiters = append(h.waiters, w)
	h.mu.Unlock()
	return w
}

func (h *Hub) leave(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, o := range h.waiters {
		if o == w {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			return
		}
	}
}

func (w *waiter) wake() {
	w.woken = true
	w.ch <- struct{}{}
}

// wakeFor wakes, for each request queued, the oldest waiting poll that
// may take it.
func (h *Hub) wakeFor(wheres []Labels) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, where := range wheres {
		for _, w := range h.waiters {
			if !w.woken && w.offers.Satisfies(where) {
				w.wake()
				break
			}
		}
	}
}

// wakeAll wakes every waiting poll (a board's labels changed).
func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.waiters {
		if !w.woken {
			w.wake()
		}
	}
}

// Run takes back the leases of labs that stopped answering, and sends what
// the reporter spooled, until ctx ends.
func (h *Hub) Run(ctx context.Context, flush time.Duration) {
	if flush <= 0 {
		flush = 30 * time.Second
	}
	go func() {
		if err := h.opts.Reporter.Run(ctx, flush); err != nil && ctx.Err() == nil {
			h.log.Error("labs spool loop stopped", "err", err)
		}
	}()
	every := min(max(h.opts.LeaseTimeout/4, 100*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var tidied time.Time
	for {
		h.Sweep(ctx)
		if time.Since(tidied) > time.Hour {
			h.tidy(ctx)
			tidied = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tidy deletes requests past the retention, and artifacts uploaded for
// leases whose run never came.
func (h *Hub) tidy(ctx context.Context) {
	if h.opts.Retention > 0 {
		if n, err := h.store.Prune(ctx, time.Now().Add(-h.opts.Retention)); err != nil && ctx.Err() == nil {
			h.log.Error("pruning old requests", "err", err)
		} else if n > 0 {
			h.log.Info("pruned old requests", "count", n, "older_than", h.opts.Retention)
		}
	}
	root := filepath.Join(h.opts.ArtifactsDir, ".labs-staging")
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 2*staleReport+h.opts.LeaseTimeout {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// staleReport is how long a request may stay reporting (its lab sent its
// run and the central server stopped before it ended) before it is taken
// back like a lost lease.
const staleReport = 10 * time.Minute

// Sweep takes back the leases that expired: each request goes back to the
// queue with its attempt counted, or ends CRASHED after the maximum.
func (h *Hub) Sweep(ctx context.Context) {
	lost, err := h.store.TakeExpired(ctx, staleReport)
	if err != nil && ctx.Err() == nil {
		h.log.Error("taking back expired leases", "err", err)
	}
	for _, r := range lost {
		reason := fmt.Sprintf("lab %s (board %s) stopped answering: its lease of attempt %d expired", r.Lab, r.Board, r.Attempt)
		if r.State == StateReporting && r.Expires != nil && time.Since(*r.Expires) > staleReport {
			reason = fmt.Sprintf("the report of attempt %d (lab %s) never ended", r.Attempt, r.Lab)
		}
		h.lost(ctx, r, reason)
	}
}

// lost handles a request whose attempt ended without a run: back to the
// queue, or CRASHED after the maximum attempts.
func (h *Hub) lost(ctx context.Context, r Request, reason string) {
	log := h.log.With("request", r.ID, "task", r.TaskName, "lab", r.Lab, "board", r.Board, "attempt", r.Attempt)
	if r.Attempt < h.opts.MaxAttempts {
		if err := h.store.Requeue(ctx, r, time.Now(), reason); err != nil {
			log.Error("request not put back in the queue", "err", err)
			return
		}
		log.Warn("request back in the queue", "reason", reason)
		h.event(r, r.Attempt+1, contract.StateQueued, func(ev *contract.ExecutionEvent) { ev.Reason = reason })
		h.wakeFor([]Labels{r.Where})
		return
	}
	why := fmt.Sprintf("gave up after %d attempts: the request never finished (its labs stopped answering each time); last: %s", r.Attempt, reason)
	exec := results.Crashed(r.job(), why)
	if err := h.opts.Reporter.Report(ctx, exec); err != nil {
		// It stays reporting: the next sweep after staleReport tries again.
		log.Error("crashed result not reported; trying again later", "err", err)
		return
	}
	if err := h.store.Complete(ctx, r, Outcome{State: StateCrashed, Outcome: string(contract.Crashed), Reason: why, Results: 1}); err != nil {
		log.Error("request not ended", "err", err)
		return
	}
	log.Error("request crashed too often", "reason", why)
	h.event(r, r.Attempt, contract.StateCrashed, func(ev *contract.ExecutionEvent) {
		ev.Reason, ev.ExecutionStatus, ev.Outcome, ev.Results = why, contract.ExecutionNotOK, contract.Crashed, 1
	})
}

func (r Request) job() contract.Job {
	return contract.Job{Item: r.Item, ItemType: r.ItemType, TaskName: r.TaskName, Arch: r.Arch, UUID: r.ID, MsgID: r.MsgID,
		Created: r.Created, Attempt: r.Attempt, Priority: r.Priority, GitRepo: r.GitRepo, GitBranch: r.GitBranch, Rule: r.Rule, Labels: r.Where}
}

// event records a state change of a request as its execution's.
func (h *Hub) event(r Request, attempt int, state string, set func(*contract.ExecutionEvent)) {
	if h.opts.Execs == nil {
		return
	}
	ev := contract.ExecutionEvent{ID: fmt.Sprintf("labs-%s-%d-%s", r.ID, attempt, state), UUID: r.ID, Attempt: attempt, State: state,
		Time: time.Now().UTC(), Item: r.Item, ItemType: r.ItemType, TaskName: r.TaskName, Arch: r.Arch, Priority: r.Priority,
		MsgID: r.MsgID, Rule: r.Rule}
	if r.Lab != "" && state != contract.StateQueued {
		ev.Worker = "lab " + r.Lab + "/" + r.Board
	}
	if set != nil {
		set(&ev)
	}
	if _, err := h.opts.Execs.Apply(context.Background(), []contract.ExecutionEvent{ev}); err != nil {
		h.log.Error("execution state change not recorded", "request", r.ID, "state", state, "err", err)
	}
}

// Mount adds the API and the boards page to mux.
func (h *Hub) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+APIPrefix+"/requests", h.putRequests)
	mux.HandleFunc("GET "+APIPrefix+"/requests", h.listRequests)
	mux.HandleFunc("GET "+APIPrefix+"/requests/{id}", h.getRequest)
	mux.HandleFunc("POST "+APIPrefix+"/requests/{id}/cancel", h.cancelRequest)
	mux.HandleFunc("GET "+APIPrefix+"/requests/{id}/run", h.getRun)
	mux.HandleFunc("GET "+APIPrefix+"/boards", h.listBoards)
	mux.HandleFunc("PUT "+APIPrefix+"/boards/{name}", h.putBoard)
	mux.HandleFunc("DELETE "+APIPrefix+"/boards/{name}", h.removeBoard)
	mux.HandleFunc("GET "+APIPrefix+"/whoami", h.whoami)
	mux.HandleFunc("POST "+APIPrefix+"/poll", h.poll)
	mux.HandleFunc("POST "+APIPrefix+"/leases/{lease}/heartbeat", h.heartbeat)
	mux.HandleFunc("GET "+APIPrefix+"/leases/{lease}/task", h.task)
	mux.HandleFunc("PUT "+APIPrefix+"/leases/{lease}/artifacts", h.putArtifacts)
	mux.HandleFunc("POST "+APIPrefix+"/leases/{lease}/run", h.putRun)
	mux.HandleFunc("POST "+APIPrefix+"/leases/{lease}/release", h.release)
	h.mountPages(mux)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"message": oneLine(fmt.Sprintf(format, a...))})
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (h *Hub) serverError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.log.Error("labs API", "what", what, "err", err)
	fail(w, http.StatusInternalServerError, "%s: the central server failed", what)
}

func bearer(r *http.Request) string {
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(t)
}

// admin tells a request made with the central server's token (execdb.token;
// with none set, anyone may).
func (h *Hub) admin(r *http.Request) bool {
	if h.opts.AdminToken == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(h.opts.AdminToken)) == 1
}

func (h *Hub) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if h.admin(r) {
		return true
	}
	fail(w, http.StatusUnauthorized, "a valid bearer token (execdb.token) is needed to change the labs' queue")
	return false
}

// lab names the lab whose token the request carries, or answers 401.
func (h *Hub) lab(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := bearer(r)
	if t == "" {
		fail(w, http.StatusUnauthorized, "a lab token is needed (Authorization: Bearer …)")
		return "", false
	}
	lab, err := h.store.LabOf(r.Context(), t)
	switch {
	case errors.Is(err, ErrBadToken), errors.Is(err, ErrRevoked):
		fail(w, http.StatusUnauthorized, "%s", err)
		return "", false
	case err != nil:
		h.serverError(w, "lab token", err)
		return "", false
	}
	return lab, true
}

// AuthorizeLog lets a lab write the log of the attempt it holds a live
// lease on (execdb.Options.AuthorizeLog).
func (h *Hub) AuthorizeLog(r *http.Request, uuid string, attempt int) bool {
	t := bearer(r)
	if !strings.HasPrefix(t, TokenPrefix) {
		return false
	}
	lab, err := h.store.LabOf(r.Context(), t)
	return err == nil && h.store.Live(r.Context(), lab, uuid, attempt)
}

var (
	idRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	taskRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	itemTypeRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	archRe     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)
)

// NewRequest is what a put asks for.
type NewRequest struct {
	ID        string `json:"id,omitempty"`
	TaskName  string `json:"taskname"`
	Item      string `json:"item"`
	ItemType  string `json:"item_type"`
	Arch      string `json:"arch,omitempty"`
	Where     Labels `json:"where"`
	Priority  int    `json:"priority,omitempty"`
	GitRepo   string `json:"git_repo,omitempty"`
	GitBranch string `json:"git_branch,omitempty"`
	MsgID     string `json:"msg_id,omitempty"`
	Rule      string `json:"rule,omitempty"`
}

// FromJob is the request for a job that names labels (a rule's where:).
func FromJob(j contract.Job) NewRequest {
	return NewRequest{ID: j.UUID, TaskName: j.TaskName, Item: j.Item, ItemType: j.ItemType, Arch: j.Arch, Where: Labels(j.Labels),
		Priority: j.Priority, GitRepo: j.GitRepo, GitBranch: j.GitBranch, MsgID: j.MsgID, Rule: j.Rule}
}

func text(name, v string, max int) error {
	if len(v) > max || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s: want at most %d bytes of text without NUL", name, max)
	}
	return nil
}

// Check says, in one line, what is wrong with a request from outside.
func (n NewRequest) Check() error {
	switch {
	case n.ID != "" && !idRe.MatchString(n.ID):
		return fmt.Errorf("id %q: use letters, digits, '.', '_' and '-' (at most 128)", clip(n.ID))
	case !taskRe.MatchString(n.TaskName):
		return fmt.Errorf("taskname %q: use letters, digits and '._+-'", clip(n.TaskName))
	case n.Item == "":
		return errors.New("item: give the item to test (-i)")
	case !itemTypeRe.MatchString(n.ItemType):
		return fmt.Errorf("item_type %q: use letters, digits and '_' (-t koji_build, bodhi_update, …)", clip(n.ItemType))
	case n.Arch != "" && !archRe.MatchString(n.Arch):
		return fmt.Errorf("arch %q: use letters, digits, '.', '_' and '-'", clip(n.Arch))
	case n.Priority < 0 || n.Priority > 9:
		return fmt.Errorf("priority %d: want 0 to 9", n.Priority)
	}
	if err := n.Where.Check(); err != nil {
		return fmt.Errorf("where: %w", err)
	}
	for name, v := range map[string]string{"item": n.Item, "git_repo": n.GitRepo, "git_branch": n.GitBranch, "msg_id": n.MsgID, "rule": n.Rule} {
		if err := text(name, v, 4096); err != nil {
			return err
		}
	}
	return nil
}

// maxPut bounds one put.
const maxPut = 1000

func (h *Hub) putRequests(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		fail(w, http.StatusBadRequest, "requests: %s", err)
		return
	}
	var list []NewRequest
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "[") {
		err = json.Unmarshal(raw, &list)
	} else {
		var one NewRequest
		err = json.Unmarshal(raw, &one)
		list = []NewRequest{one}
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "requests: want a request or a list of them as JSON: %s", err)
		return
	}
	if len(list) == 0 || len(list) > maxPut {
		fail(w, http.StatusBadRequest, "requests: give 1 to %d in one put, got %d", maxPut, len(list))
		return
	}
	reqs := make([]Request, len(list))
	for i, n := range list {
		if err := n.Check(); err != nil {
			fail(w, http.StatusBadRequest, "request %d: %s", i+1, err)
			return
		}
		if n.ID == "" {
			n.ID = uuid.NewString()
		}
		if n.Where == nil {
			n.Where = Labels{}
		}
		reqs[i] = Request{ID: n.ID, TaskName: n.TaskName, Item: n.Item, ItemType: n.ItemType, Arch: n.Arch, Where: n.Where, Priority: n.Priority,
			GitRepo: n.GitRepo, GitBranch: n.GitBranch, MsgID: n.MsgID, Rule: n.Rule, Created: time.Now().UTC(), State: StateQueued}
	}
	added, err := h.store.Put(r.Context(), reqs)
	if err != nil {
		h.serverError(w, "requests", err)
		return
	}
	if h.opts.Execs != nil && len(added) > 0 {
		evs := make([]contract.ExecutionEvent, len(added))
		for i, a := range added {
			evs[i] = contract.ExecutionEvent{ID: fmt.Sprintf("labs-%s-0-queued", a.ID), UUID: a.ID, State: contract.StateQueued, Time: a.Created,
				Item: a.Item, ItemType: a.ItemType, TaskName: a.TaskName, Arch: a.Arch, Priority: a.Priority, MsgID: a.MsgID, Rule: a.Rule}
		}
		if _, err := h.opts.Execs.Apply(r.Context(), evs); err != nil {
			h.log.Error("queued requests not recorded as executions", "count", len(evs), "err", err)
		}
	}
	wheres := make([]Labels, len(added))
	for i, a := range added {
		wheres[i] = a.Where
	}
	h.wakeFor(wheres)
	// What is there, the requests resent as well.
	out := make([]Request, 0, len(reqs))
	for _, q := range reqs {
		got, err := h.store.Get(r.Context(), q.ID)
		if err != nil {
			h.serverError(w, "requests", err)
			return
		}
		out = append(out, got)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": out, "queued": len(added)})
}

func (h *Hub) listRequests(w http.ResponseWriter, r *http.Request) {
	q := ListQuery{Lab: r.URL.Query().Get("lab")}
	for _, st := range strings.Split(r.URL.Query().Get("state"), ",") {
		if st = strings.TrimSpace(st); st == "" {
			continue
		}
		known := false
		for _, k := range States {
			known = known || k == st
		}
		if !known {
			fail(w, http.StatusBadRequest, "state %q: want one of %s", clip(st), strings.Join(States, ", "))
			return
		}
		q.States = append(q.States, st)
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			fail(w, http.StatusBadRequest, "limit %q: want 1 to 10000", clip(s))
			return
		}
		q.Limit = n
	}
	list, err := h.store.List(r.Context(), q)
	if err != nil {
		h.serverError(w, "requests", err)
		return
	}
	counts, err := h.store.Counts(r.Context())
	if err != nil {
		h.serverError(w, "requests", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list, "counts": counts})
}

func (h *Hub) getRequest(w http.ResponseWriter, r *http.Request) {
	req, err := h.store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		fail(w, http.StatusNotFound, "request %q not found", clip(r.PathValue("id")))
		return
	}
	if err != nil {
		h.serverError(w, "request", err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (h *Hub) cancelRequest(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	req, err := h.store.Cancel(r.Context(), r.PathValue("id"), "cancelled")
	switch {
	case errors.Is(err, ErrNotFound):
		fail(w, http.StatusNotFound, "request %q not found", clip(r.PathValue("id")))
		return
	case err != nil && req.ID != "":
		fail(w, http.StatusConflict, "%s", err)
		return
	case err != nil:
		h.serverError(w, "cancel", err)
		return
	}
	h.event(req, req.Attempt, contract.StateAborted, func(ev *contract.ExecutionEvent) { ev.Reason = "cancelled" })
	writeJSON(w, http.StatusOK, req)
}

func (h *Hub) ended(state string) bool {
	return state == StateFinished || state == StateCrashed || state == StateAborted
}

// getRun sends a request's artifacts (its logs and execution.json among
// them) as a gzipped tar.
func (h *Hub) getRun(w http.ResponseWriter, r *http.Request) {
	req, err := h.store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		fail(w, http.StatusNotFound, "request %q not found", clip(r.PathValue("id")))
		return
	}
	if err != nil {
		h.serverError(w, "run", err)
		return
	}
	if !h.ended(req.State) {
		fail(w, http.StatusConflict, "request %s is %s: its run is there once it ended", req.ID, req.State)
		return
	}
	dir := filepath.Join(h.opts.ArtifactsDir, req.ID)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fail(w, http.StatusNotFound, "request %s ended %s without artifacts", req.ID, req.State)
		return
	}
	// A tree may take longer than the server's write timeout over a slow link.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("X-Request-State", req.State)
	w.Header().Set("X-Request-Outcome", req.Outcome)
	if err := writeTree(w, dir, h.opts.MaxArtifacts); err != nil {
		h.log.Error("sending a run", "request", req.ID, "err", err)
	}
}

func (h *Hub) listBoards(w http.ResponseWriter, r *http.Request) {
	bs, err := h.store.Boards(r.Context())
	if err != nil {
		h.serverError(w, "boards", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": bs})
}

// boardOwner is the lab a board write is for: the lab of a lab token, or
// the lab an admin names.
func (h *Hub) boardOwner(w http.ResponseWriter, r *http.Request, named string) (lab string, isAdmin, ok bool) {
	if t := bearer(r); strings.HasPrefix(t, TokenPrefix) {
		lab, ok := h.lab(w, r)
		if ok && named != "" && named != lab {
			fail(w, http.StatusForbidden, "this token is lab %s's: it cannot write boards of lab %s", lab, clip(named))
			return "", false, false
		}
		return lab, false, ok
	}
	if !h.requireAdmin(w, r) {
		return "", false, false
	}
	return named, true, true
}

func (h *Hub) putBoard(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Lab    string `json:"lab"`
		Labels Labels `json:"labels"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "board: want {\"lab\": …, \"labels\": {…}}: %s", err)
		return
	}
	lab, _, ok := h.boardOwner(w, r, in.Lab)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := CheckLabName(name); err != nil {
		fail(w, http.StatusBadRequest, "board %s", err)
		return
	}
	if err := CheckLabName(lab); err != nil {
		fail(w, http.StatusBadRequest, "board %s: give its lab (--lab): %s", name, err)
		return
	}
	if in.Labels == nil {
		in.Labels = Labels{}
	}
	if err := in.Labels.Check(); err != nil {
		fail(w, http.StatusBadRequest, "board %s: %s", name, err)
		return
	}
	b, err := h.store.PutBoard(r.Context(), Board{Name: name, Lab: lab, Labels: in.Labels})
	switch {
	case errors.Is(err, ErrNotYours):
		fail(w, http.StatusForbidden, "%s", err)
	case err != nil:
		h.serverError(w, "board", err)
	default:
		h.wakeAll() // its lab may now match more
		writeJSON(w, http.StatusOK, b)
	}
}

func (h *Hub) removeBoard(w http.ResponseWriter, r *http.Request) {
	lab, isAdmin, ok := h.boardOwner(w, r, "")
	if !ok {
		return
	}
	if isAdmin {
		lab = ""
	}
	err := h.store.RemoveBoard(r.Context(), r.PathValue("name"), lab)
	switch {
	case errors.Is(err, ErrNotFound):
		fail(w, http.StatusNotFound, "board %q not found", clip(r.PathValue("name")))
	case errors.Is(err, ErrNotYours):
		fail(w, http.StatusForbidden, "%s", err)
	case err != nil:
		h.serverError(w, "board", err)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("name")})
	}
}

func (h *Hub) whoami(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"lab": lab, "lease_timeout": h.opts.LeaseTimeout.String(), "poll_wait": h.opts.PollWait.String()})
}

// PollRequest is what a lab agent sends when it asks for work.
type PollRequest struct {
	Board string `json:"board"`
	// Labels, when given, are what the board offers now (else those put
	// with `board put` stay).
	Labels Labels `json:"labels,omitempty"`
	Agent  string `json:"agent,omitempty"`
	// Wait is how long to hold the poll while nothing matches (at most
	// labs.poll_wait).
	Wait string `json:"wait,omitempty"`
}

func (h *Hub) poll(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	var in PollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "poll: want {\"board\": …, \"labels\": {…}}: %s", err)
		return
	}
	if in.Board == "" {
		in.Board = lab
	}
	if err := CheckLabName(in.Board); err != nil {
		fail(w, http.StatusBadRequest, "board %s", err)
		return
	}
	if err := in.Labels.Check(); err != nil {
		fail(w, http.StatusBadRequest, "board %s: %s", in.Board, err)
		return
	}
	if err := text("agent", in.Agent, 200); err != nil {
		fail(w, http.StatusBadRequest, "%s", err)
		return
	}
	if _, ok := in.Labels["lab"]; ok && in.Labels["lab"] != lab {
		fail(w, http.StatusForbidden, "label lab=%s: this token is lab %s's", in.Labels["lab"], lab)
		return
	}
	wait := h.opts.PollWait
	if in.Wait != "" {
		d, err := time.ParseDuration(in.Wait)
		if err != nil || d < 0 {
			fail(w, http.StatusBadRequest, "wait %q: want a duration like 30s", clip(in.Wait))
			return
		}
		wait = min(d, wait)
	}
	deadline := time.Now().Add(wait)
	ctx := r.Context()
	b, err := h.store.Seen(ctx, Board{Name: in.Board, Lab: lab, Labels: in.Labels, Agent: in.Agent})
	if errors.Is(err, ErrNotYours) {
		fail(w, http.StatusForbidden, "%s", err)
		return
	}
	if err != nil {
		h.serverError(w, "poll", err)
		return
	}
	for {
		waiting := h.enlist(b.Offers())
		// Labs that stopped answering give their requests back first (a
		// poll looks at most a few times a second, whatever the labs).
		if now, last := time.Now().UnixMicro(), h.swept.Load(); now-last > 250_000 && h.swept.CompareAndSwap(last, now) {
			h.Sweep(ctx)
		}
		lease, err := h.store.Lease(ctx, b, h.opts.LeaseTimeout)
		if err != nil {
			h.leave(waiting)
			h.serverError(w, "poll", err)
			return
		}
		if lease != nil {
			h.leave(waiting)
			lease.Heartbeat = max(h.opts.LeaseTimeout/4, 50*time.Millisecond)
			h.log.Info("request leased", "request", lease.Request.ID, "task", lease.Request.TaskName, "lab", lab, "board", b.Name, "attempt", lease.Attempt)
			h.event(lease.Request, lease.Attempt, contract.StateRunning, nil)
			writeJSON(w, http.StatusOK, lease)
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			h.leave(waiting)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		select {
		case <-waiting.ch:
		case <-time.After(min(left, time.Second)):
		case <-ctx.Done():
		}
		h.leave(waiting)
		if ctx.Err() != nil {
			return
		}
		// `board put` may have changed its labels meanwhile.
		if fresh, err := h.store.Board(ctx, b.Name); err == nil {
			b = fresh
		}
	}
}

// leaseOf reads the request of the lease in the path, checking that the
// token's lab holds it; it answers the lab when not.
func (h *Hub) leaseOf(w http.ResponseWriter, r *http.Request, lab string) (Request, error) {
	req, err := h.store.byLease(r.Context(), lab, r.PathValue("lease"))
	h.leaseError(w, err)
	return req, err
}

func (h *Hub) leaseError(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrNotYours):
		fail(w, http.StatusForbidden, "this lease is another lab's: %s", err)
	case errors.Is(err, ErrLeaseGone):
		fail(w, http.StatusGone, "%s", err)
	default:
		h.serverError(w, "lease", err)
	}
}

func (h *Hub) heartbeat(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	var in struct {
		Action string `json:"action"`
	}
	json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in)
	req, err := h.store.Renew(r.Context(), lab, r.PathValue("lease"), h.opts.LeaseTimeout)
	if err != nil {
		h.leaseError(w, err)
		return
	}
	if in.Action != "" && text("action", in.Action, 200) == nil {
		h.event(req, req.Attempt, contract.StateRunning, func(ev *contract.ExecutionEvent) {
			ev.Action = in.Action
			ev.ID += "-" + uuid.NewString() // a new action, a new event
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"expires": req.Expires})
}

// task sends the task of a live lease: its tree at the mirror's HEAD (or
// the request's branch) as a gzipped tar.
func (h *Hub) task(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	req, err := h.leaseOf(w, r, lab)
	if err != nil {
		return
	}
	if req.State != StateRunning {
		h.leaseError(w, ErrLeaseGone)
		return
	}
	if h.opts.Checkout == nil {
		fail(w, http.StatusNotImplemented, "this server has no task mirror")
		return
	}
	var dir string
	if req.GitRepo != "" {
		dir, err = h.opts.Checkout.GetRepo(r.Context(), req.GitRepo, req.GitBranch)
	} else {
		dir, err = h.opts.Checkout.Get(r.Context(), req.TaskName, req.GitBranch)
	}
	switch {
	case errors.Is(err, checkout.ErrNotFound), errors.Is(err, checkout.ErrNotAllowed):
		fail(w, http.StatusNotFound, "task %s: %s", req.TaskName, err)
		return
	case err != nil:
		h.serverError(w, "task checkout", err)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("X-Task-Commit", filepath.Base(dir))
	w.Header().Set("X-Task-Origin", h.opts.Checkout.Origin(req.TaskName, req.GitRepo))
	if err := writeTree(w, dir, 1<<30); err != nil {
		h.log.Error("sending a task", "task", req.TaskName, "err", err)
	}
}

// transferTime bounds the upload or download of one tree.
const transferTime = 30 * time.Minute

// staging is where a lease's artifacts wait for its run: beside the
// artifacts (one rename away), under a name no request id has.
func (h *Hub) staging(lease string) string {
	return filepath.Join(h.opts.ArtifactsDir, ".labs-staging", lease)
}

func (h *Hub) putArtifacts(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	req, err := h.leaseOf(w, r, lab)
	if err != nil {
		return
	}
	if req.State != StateRunning || !h.store.Live(r.Context(), lab, req.ID, req.Attempt) {
		h.leaseError(w, ErrLeaseGone)
		return
	}
	// A lab's uplink may be slow: more than the server's read timeout.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(transferTime))
	dst := h.staging(req.lease)
	os.RemoveAll(dst)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		h.serverError(w, "artifacts", err)
		return
	}
	if err := readTree(r.Body, dst, h.opts.MaxArtifacts); err != nil {
		os.RemoveAll(dst)
		code := http.StatusBadRequest
		if errors.Is(err, ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		fail(w, code, "artifacts of %s: %s", req.ID, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"staged": req.ID})
}

// RunAnswer is what the central server says to a put-run.
type RunAnswer struct {
	Request string `json:"request"`
	State   string `json:"state"`
	Outcome string `json:"outcome,omitempty"`
	Results int    `json:"results"`
}

func (h *Hub) putRun(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	var exec contract.Execution
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&exec); err != nil {
		fail(w, http.StatusBadRequest, "run: want the execution as JSON: %s", err)
		return
	}
	req, err := h.store.BeginReport(r.Context(), lab, r.PathValue("lease"))
	if errors.Is(err, ErrFinished) {
		// The lab lost the answer to its first put-run: the same answer.
		writeJSON(w, http.StatusOK, RunAnswer{Request: req.ID, State: req.State, Outcome: req.Outcome, Results: req.Results})
		return
	}
	if err != nil {
		if errors.Is(err, ErrLeaseGone) {
			h.log.Warn("a run from a lease that is gone refused", "lab", lab, "request", req.ID)
		}
		h.leaseError(w, err)
		return
	}
	ans, err := h.finish(r.Context(), req, exec)
	if err != nil {
		h.log.Error("run not reported; the lab will send it again", "request", req.ID, "err", err)
		fail(w, http.StatusServiceUnavailable, "run of %s not reported yet: send it again", req.ID)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func backoff(attempt int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// finish turns a lab's run into results: its artifacts in place, its
// results delivered by the reporter (once per request id, however often
// this runs), the request ended.
func (h *Hub) finish(ctx context.Context, req Request, exec contract.Execution) (RunAnswer, error) {
	log := h.log.With("request", req.ID, "task", req.TaskName, "lab", req.Lab, "board", req.Board, "attempt", req.Attempt)
	exec = h.sanitize(req, exec)
	if exec.ExecutionStatus == contract.ExecutionNotOK && exec.Infra && req.Attempt < h.opts.MaxAttempts {
		wait := backoff(req.Attempt)
		reason := "retry after an infrastructure failure: " + exec.Status
		os.RemoveAll(h.staging(req.lease))
		if err := h.store.Requeue(ctx, req, time.Now().Add(wait), reason); err != nil {
			return RunAnswer{}, err
		}
		log.Warn("infrastructure failure in a lab, retrying later", "status", exec.Status, "retry_in", wait)
		at := time.Now().Add(wait).UTC()
		h.event(req, req.Attempt+1, contract.StateQueued, func(ev *contract.ExecutionEvent) { ev.Reason, ev.RetryAt = reason, &at })
		return RunAnswer{Request: req.ID, State: StateQueued}, nil
	}
	final := filepath.Join(h.opts.ArtifactsDir, req.ID)
	if staged := h.staging(req.lease); dirExists(staged) {
		old := final + ".old"
		os.RemoveAll(old)
		os.Rename(final, old)
		if err := os.Rename(staged, final); err != nil {
			os.Rename(old, final)
			return RunAnswer{}, fmt.Errorf("artifacts: %w", err)
		}
		os.RemoveAll(old)
	}
	if dirExists(final) {
		exec.Artifacts = final
	}
	if err := h.opts.Reporter.Report(ctx, exec); err != nil {
		return RunAnswer{}, err
	}
	o := Outcome{State: StateFinished, Reason: exec.Status, Results: len(exec.Results)}
	ev := func(e *contract.ExecutionEvent) {}
	var worst contract.Outcome
	for i, res := range exec.Results {
		if i == 0 {
			worst = res.Outcome
		}
		worst = contract.Worst(worst, res.Outcome)
	}
	if exec.ExecutionStatus == contract.ExecutionNotOK {
		switch results.TerminalOutcome(exec) {
		case contract.Aborted:
			o.State = StateAborted
		case contract.Crashed:
			o.State = StateCrashed
		}
	}
	o.Outcome = string(worst)
	ev = func(e *contract.ExecutionEvent) {
		e.ExecutionStatus, e.Outcome, e.Results = exec.ExecutionStatus, worst, len(exec.Results)
		if exec.ExecutionStatus == contract.ExecutionNotOK {
			e.Reason = exec.Status
		}
	}
	if err := h.store.Complete(ctx, req, o); err != nil {
		return RunAnswer{}, err
	}
	log.Info("lab run reported", "state", o.State, "outcome", o.Outcome, "results", o.Results)
	state := map[string]string{StateFinished: contract.StateFinished, StateCrashed: contract.StateCrashed, StateAborted: contract.StateAborted}[o.State]
	h.event(req, req.Attempt, state, ev)
	return RunAnswer{Request: req.ID, State: o.State, Outcome: o.Outcome, Results: o.Results}, nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// sanitize makes a lab's execution the request's: its identity from the
// request, artifact paths relative to its artifacts folder, and only the
// results the namespace allowlist lets its task post.
func (h *Hub) sanitize(req Request, exec contract.Execution) contract.Execution {
	labArtifacts := exec.Artifacts
	exec.UUID, exec.Item, exec.ItemType, exec.TaskName = req.ID, req.Item, req.ItemType, req.TaskName
	if !archRe.MatchString(exec.Arch) {
		exec.Arch = req.Arch
	}
	exec.Artifacts = ""
	if exec.ExecutionStatus != contract.ExecutionOK && exec.ExecutionStatus != contract.ExecutionNotOK {
		exec.ExecutionStatus, exec.Status = contract.ExecutionNotOK, "the lab sent a run without an execution status"
		exec.Outcome = contract.Crashed
	}
	origin := ""
	if h.opts.Checkout != nil {
		origin = h.opts.Checkout.Origin(req.TaskName, req.GitRepo)
	}
	kept := exec.Results[:0]
	for _, res := range exec.Results {
		if filepath.IsAbs(res.Artifact) && labArtifacts != "" {
			if rel, err := filepath.Rel(labArtifacts, res.Artifact); err == nil {
				res.Artifact = rel
			} else {
				res.Artifact = ""
			}
		}
		if h.opts.Namespaces != nil {
			if err := h.opts.Namespaces.Check(res.CheckName, origin); err != nil {
				h.log.Warn("a lab's result dropped", "request", req.ID, "lab", req.Lab, "err", err)
				continue
			}
		}
		kept = append(kept, res)
	}
	exec.Results = kept
	return exec
}

func (h *Hub) release(w http.ResponseWriter, r *http.Request) {
	lab, ok := h.lab(w, r)
	if !ok {
		return
	}
	req, err := h.leaseOf(w, r, lab)
	if err != nil {
		return
	}
	if req.State != StateRunning {
		h.leaseError(w, ErrLeaseGone)
		return
	}
	h.lost(r.Context(), req, fmt.Sprintf("handed back: lab %s (board %s) stopped during attempt %d", lab, req.Board, req.Attempt))
	writeJSON(w, http.StatusOK, map[string]string{"released": req.ID})
}
