package reporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// BodhiOptions configure comments on Bodhi updates. An empty URL turns
// them off.
type BodhiOptions struct {
	URL   string
	Token string
	// CommentOn lists the outcomes that get a comment; empty means FAILED
	// and NEEDS_INSPECTION.
	CommentOn []contract.Outcome
	// Span: no identical comment on the same update again within it
	// (default 72 h).
	Span time.Duration
}

// CommentRejectedError is Bodhi refusing a comment for good: a 4xx other
// than 408 and 429 (an unknown update, bad credentials, a comment Bodhi's
// validation refuses). Sending it again cannot help.
type CommentRejectedError struct {
	// Update is the update the comment is for (or "updates of build NVR"
	// when Bodhi refused to look a build up).
	Update  string
	Status  int
	Message string
}

func (e *CommentRejectedError) Error() string {
	return fmt.Sprintf("Bodhi rejected the comment on %s (HTTP %d): %s", e.Update, e.Status, e.Message)
}

// BodhiUnavailableError means Bodhi could not take a comment now (network
// errors, 5xx, 408, 429, after the retries): the comment waits in the
// spool.
type BodhiUnavailableError struct {
	Err error
	// Ambiguous: the comment may have been stored (the request went out,
	// no clear answer came back).
	Ambiguous bool
}

func (e *BodhiUnavailableError) Error() string { return "Bodhi unavailable: " + e.Err.Error() }
func (e *BodhiUnavailableError) Unwrap() error { return e.Err }

func isBodhiUnavailable(err error) bool {
	var u *BodhiUnavailableError
	return errors.As(err, &u)
}

// bodhi talks to Bodhi for the reporter and keeps the comment rules: the
// outcomes that get a comment, and, on disk, which comment was made when
// (no identical comment within the span).
type bodhi struct {
	base  string
	token string
	on    map[contract.Outcome]bool
	span  time.Duration
	state string // file: comment key -> time sent; "" keeps it in memory
	// get retries what may pass on its own; post retries only failures
	// that surely stored nothing, since Bodhi stores every POST it takes
	// as a new comment.
	get, post *retryablehttp.Client
	log       *slog.Logger
	now       func() time.Time

	mu   sync.Mutex
	sent map[string]time.Time
	csrf string
	// down remembers that Bodhi was away, so that the outage is logged once
	// and reports do not each wait through retries (see resting).
	down     bool
	lastFail time.Time

	// afterPost, set by tests, runs once Bodhi took a comment and before
	// the spool knows; an error stops there, as a crash would.
	afterPost func() error
}

func newBodhi(o BodhiOptions, stateFile string, co ClientOptions, log *slog.Logger) (*bodhi, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("Bodhi URL %q: want http(s)://host[:port][/path]", o.URL)
	}
	b := &bodhi{base: strings.TrimRight(o.URL, "/"), token: o.Token, span: o.Span, state: stateFile, log: log, now: time.Now, on: map[contract.Outcome]bool{}, sent: map[string]time.Time{}}
	if b.span <= 0 {
		b.span = 72 * time.Hour
	}
	names := make([]string, len(o.CommentOn))
	for i, oc := range o.CommentOn {
		names[i] = string(oc)
	}
	if b.on, err = results.CommentOn(names); err != nil {
		return nil, err
	}
	b.get = newRetryClient(co, getRetry, "Bodhi")
	b.post = newRetryClient(co, safePostRetry, "Bodhi")
	if stateFile == "" {
		return b, nil
	}
	raw, err := os.ReadFile(stateFile)
	if err == nil {
		if err := json.Unmarshal(raw, &b.sent); err != nil {
			log.Warn("Bodhi comment history unreadable, starting afresh", "file", stateFile, "err", err)
			b.sent = map[string]time.Time{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("Bodhi comment history: %w", err)
	}
	return b, nil
}

func commentKey(c contract.BodhiComment) string {
	h := sha256.Sum256([]byte(c.Update + "\x00" + c.Text))
	return hex.EncodeToString(h[:])
}

// recent tells whether the same comment was made on the same update within
// the span, and when.
func (b *bodhi) recent(c contract.BodhiComment) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.sent[commentKey(c)]
	return at, ok && b.now().Sub(at) < b.span
}

// remember records that the comment is on Bodhi as of at, durably.
func (b *bodhi) remember(c contract.BodhiComment, at time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent[commentKey(c)] = at
	return b.save(b.now())
}

// save writes the history, forgetting what is older than the span.
func (b *bodhi) save(now time.Time) error {
	for k, at := range b.sent {
		if now.Sub(at) >= b.span {
			delete(b.sent, k)
		}
	}
	if b.state == "" {
		return nil
	}
	dir, name := filepath.Split(b.state)
	if err := writeFileSync(filepath.Clean(dir), name, b.sent); err != nil {
		return err
	}
	return syncDir(filepath.Clean(dir))
}

// wentDown notes that Bodhi is away; the first time it is logged.
func (b *bodhi) wentDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		b.log.Warn("Bodhi unavailable; comments wait in the spool until it is back", "err", err)
	}
	b.down = true
	b.lastFail = time.Now()
}

func (b *bodhi) cameBack() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		b.log.Info("Bodhi reachable again")
	}
	b.down = false
}

// resting tells whether Bodhi failed less than recheck ago: a report then
// leaves its comments in the spool at once instead of waiting through
// retries again; the flush loop keeps trying.
func (b *bodhi) resting(recheck time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down && time.Since(b.lastFail) < recheck
}

// send posts one comment with Bodhi 2's CSRF token (GET /csrf); a stale
// token is fetched again once. It returns a *CommentRejectedError or a
// *BodhiUnavailableError when Bodhi did not take it.
func (b *bodhi) send(ctx context.Context, c contract.BodhiComment) error {
	for try := 0; ; try++ {
		tok, err := b.csrfToken(ctx, c.Update)
		if err != nil {
			return err
		}
		// Only what SaveCommentSchema reads: keys the comment picked up on
		// its way (e.g. "build") are not Bodhi's business.
		body := map[string]any{"update": c.Update, "text": c.Text, "karma": c.Karma, "csrf_token": tok}
		status, raw, err := b.do(ctx, http.MethodPost, "/comments/", body)
		if err != nil {
			return err
		}
		if status == http.StatusBadRequest && try == 0 && strings.Contains(strings.ToLower(string(raw)), "csrf") {
			b.mu.Lock()
			b.csrf = ""
			b.mu.Unlock()
			continue
		}
		return b.answer(http.MethodPost, "/comments/", c.Update, status, raw)
	}
}

func (b *bodhi) csrfToken(ctx context.Context, update string) (string, error) {
	b.mu.Lock()
	tok := b.csrf
	b.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	status, raw, err := b.do(ctx, http.MethodGet, "/csrf", nil)
	if err != nil {
		return "", err
	}
	if err := b.answer(http.MethodGet, "/csrf", update, status, raw); err != nil {
		return "", err
	}
	var body struct {
		Token string `json:"csrf_token"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Token == "" {
		return "", &BodhiUnavailableError{Err: fmt.Errorf("GET %s/csrf: HTTP %d, no csrf_token: %s", b.base, status, bodhiMessage(raw))}
	}
	b.mu.Lock()
	b.csrf = body.Token
	b.mu.Unlock()
	return body.Token, nil
}

// answer sorts Bodhi's answer: 2xx is success; 408, 429 and 5xx mean
// Bodhi is away for now; any other 4xx is final.
func (b *bodhi) answer(method, path, update string, status int, raw []byte) error {
	what := fmt.Sprintf("%s %s%s: HTTP %d: %s", method, b.base, path, status, bodhiMessage(raw))
	switch {
	case status >= 200 && status <= 299:
		return nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		// Bodhi (or its proxy) did not take the request in.
		return &BodhiUnavailableError{Err: errors.New(what)}
	case status >= 400 && status <= 499:
		msg := bodhiMessage(raw)
		if method != http.MethodPost {
			// Say which request it was: not the comment itself.
			msg = method + " " + strings.SplitN(path, "?", 2)[0] + ": " + msg
		}
		return &CommentRejectedError{Update: update, Status: status, Message: msg}
	}
	// A 500 or 504 may come after the comment was stored; 502 and 503 say
	// the request was not processed.
	sure := status == http.StatusBadGateway || status == http.StatusServiceUnavailable
	return &BodhiUnavailableError{Err: errors.New(what), Ambiguous: method == http.MethodPost && !sure}
}

// bodhiMessage reads Cornice's error list ({"errors": [{location, name,
// description}]}) as Bodhi sends it; other bodies as ResultsDB's are read.
func bodhiMessage(raw []byte) string {
	var body struct {
		Errors []struct {
			Location    string `json:"location"`
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &body) == nil {
		var parts []string
		for _, e := range body.Errors {
			where, what := oneLine(strings.Trim(e.Location+"."+e.Name, ".")), oneLine(e.Description)
			switch {
			case where != "" && what != "":
				parts = append(parts, where+": "+what)
			case where+what != "":
				parts = append(parts, where+what)
			}
		}
		if len(parts) > 0 {
			return truncate(strings.Join(parts, "; "), 500)
		}
	}
	return ErrorMessage(raw)
}

func (b *bodhi) do(ctx context.Context, method, path string, v any) (int, []byte, error) {
	var body any
	if v != nil {
		raw, err := json.Marshal(v)
		if err != nil {
			return 0, nil, err
		}
		body = raw
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	hc := b.get
	if method == http.MethodPost {
		hc = b.post
	}
	resp, err := hc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		sent := method == http.MethodPost && (ctx.Err() != nil || !notSent(err))
		return 0, nil, &BodhiUnavailableError{Err: fmt.Errorf("%s %s%s: %w", method, b.base, path, err), Ambiguous: sent}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, &BodhiUnavailableError{Err: fmt.Errorf("%s %s%s: reading the answer: %w", method, b.base, path, err), Ambiguous: method == http.MethodPost}
	}
	return resp.StatusCode, raw, nil
}

// posted tells whether Bodhi already holds the comment: the same text on
// the same update since the given time. Bodhi stores every POST as a new
// comment (nothing makes it idempotent), but listing comments is safe, so
// a comment whose earlier POST went out without a clear answer is looked
// for before it is sent again.
func (b *bodhi) posted(ctx context.Context, c contract.BodhiComment, since time.Time) (bool, error) {
	want := oneLine(c.Text)
	since = since.UTC()
	for page := 1; page <= 10; page++ {
		q := url.Values{"updates": {c.Update}, "since": {since.Format("2006-01-02T15:04:05")},
			"rows_per_page": {"100"}, "page": {strconv.Itoa(page)}}
		path := "/comments/?" + q.Encode()
		status, raw, err := b.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return false, err
		}
		if err := b.answer(http.MethodGet, "/comments/", c.Update, status, raw); err != nil {
			return false, err
		}
		var body struct {
			Comments []struct {
				Text      string `json:"text"`
				Timestamp string `json:"timestamp"`
			} `json:"comments"`
			Pages int `json:"pages"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return false, &BodhiUnavailableError{Err: fmt.Errorf("GET %s%s: answer is not Bodhi's comment list: %w", b.base, path, err)}
		}
		for _, x := range body.Comments {
			if oneLine(x.Text) != want {
				continue
			}
			// Bodhi filters by since already; an older Bodhi may not, and
			// a time it writes differently counts as a match: a repeated
			// comment is the worse mistake here.
			if at, ok := bodhiTime(x.Timestamp); !ok || !at.Before(since) {
				return true, nil
			}
		}
		if page >= body.Pages {
			break
		}
	}
	return false, nil
}

// bodhiTime reads the UTC times Bodhi writes ("2024-01-02 10:00:00").
func bodhiTime(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// updatesFor lists the aliases of the updates holding a Koji build.
func (b *bodhi) updatesFor(ctx context.Context, nvr string) ([]string, error) {
	what := "updates of build " + nvr
	path := "/updates/?" + url.Values{"builds": {nvr}, "rows_per_page": {"100"}}.Encode()
	status, raw, err := b.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if err := b.answer(http.MethodGet, path, what, status, raw); err != nil {
		return nil, err
	}
	var body struct {
		Updates []struct {
			Alias string `json:"alias"`
		} `json:"updates"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, &BodhiUnavailableError{Err: fmt.Errorf("GET %s%s: answer is not Bodhi's update list: %w", b.base, path, err)}
	}
	var out []string
	for _, u := range body.Updates {
		if u.Alias != "" {
			out = append(out, u.Alias)
		}
	}
	return out, nil
}
