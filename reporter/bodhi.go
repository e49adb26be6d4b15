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
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"taskotron/contract"
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

// bodhi posts comments and remembers, on disk, which it made when.
type bodhi struct {
	base  string
	token string
	on    map[contract.Outcome]bool
	span  time.Duration
	state string // file: comment key -> time sent; "" keeps it in memory
	hc    *retryablehttp.Client
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	sent map[string]time.Time
	csrf string
}

func newBodhi(o BodhiOptions, stateFile string, hc *http.Client, retryMax int, wait time.Duration, log *slog.Logger) (*bodhi, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("Bodhi URL %q: want http(s)://host[:port][/path]", o.URL)
	}
	b := &bodhi{base: strings.TrimRight(o.URL, "/"), token: o.Token, span: o.Span, state: stateFile, log: log, now: time.Now, on: map[contract.Outcome]bool{}, sent: map[string]time.Time{}}
	if b.span <= 0 {
		b.span = 72 * time.Hour
	}
	outcomes := o.CommentOn
	if len(outcomes) == 0 {
		outcomes = []contract.Outcome{contract.Failed, contract.NeedsInspection}
	}
	for _, oc := range outcomes {
		p, err := contract.ParseOutcome(string(oc))
		if err != nil {
			return nil, fmt.Errorf("bodhi.comment_on: %w", err)
		}
		b.on[p] = true
	}
	b.hc = retryablehttp.NewClient()
	if hc != nil {
		b.hc.HTTPClient = hc
	}
	b.hc.RetryMax = retryMax
	if wait > 0 {
		b.hc.RetryWaitMin = wait
	}
	b.hc.Logger = nil
	b.hc.ErrorHandler = retryablehttp.PassthroughErrorHandler
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

// CommentText is the comment for one result, in AutoQA's format; without
// a log URL the sentence ends after the arch.
func CommentText(checkname string, outcome contract.Outcome, arch, logURL string) string {
	if arch == "" {
		arch = "noarch"
	}
	if logURL == "" {
		// No artifacts URL configured: no dangling "Result log:".
		return fmt.Sprintf("Taskotron: %s test %s on %s.", checkname, outcome, arch)
	}
	return fmt.Sprintf("Taskotron: %s test %s on %s. Result log: %s", checkname, outcome, arch, logURL)
}

// Comments lists the Bodhi comments a set of posts calls for: results on a
// Bodhi update (type bodhi_update, or a bodhi_update keyval) whose outcome
// is one of those configured.
func (b *bodhi) comments(posts []contract.ResultsDBPost) []contract.BodhiComment {
	var out []contract.BodhiComment
	for _, p := range posts {
		if !b.on[p.Outcome] {
			continue
		}
		update := ""
		if t, _ := p.Data["type"].(string); t == "bodhi_update" {
			update, _ = p.Data["item"].(string)
		}
		if u, ok := p.Data["bodhi_update"].(string); ok && u != "" {
			update = u
		}
		if update == "" {
			continue
		}
		arch := ""
		switch a := p.Data["arch"].(type) {
		case string:
			arch = a
		case []string:
			arch = strings.Join(a, ",")
		}
		out = append(out, contract.BodhiComment{Update: update, Text: CommentText(p.Testcase.Name, p.Outcome, arch, p.RefURL), Karma: 0})
	}
	return out
}

func commentKey(c contract.BodhiComment) string {
	h := sha256.Sum256([]byte(c.Update + "\x00" + c.Text))
	return hex.EncodeToString(h[:])
}

// send posts the comments not already made within the span. Failures are
// logged: a missing comment must not hold up results.
func (b *bodhi) send(ctx context.Context, comments []contract.BodhiComment) (sent int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for _, c := range comments {
		key := commentKey(c)
		if at, ok := b.sent[key]; ok && now.Sub(at) < b.span {
			b.log.Debug("Bodhi comment already made recently", "update", c.Update, "at", at)
			continue
		}
		if err := b.post(ctx, c); err != nil {
			b.log.Error("Bodhi comment not made", "update", c.Update, "err", err)
			continue
		}
		b.sent[key] = now
		sent++
		if err := b.save(now); err != nil {
			b.log.Error("Bodhi comment history not saved", "err", err)
		}
	}
	return sent
}

// post sends one comment with Bodhi 2's CSRF token (GET /csrf); a stale
// token is fetched again once.
func (b *bodhi) post(ctx context.Context, c contract.BodhiComment) error {
	for try := 0; ; try++ {
		if b.csrf == "" {
			tok, err := b.csrfToken(ctx)
			if err != nil {
				return err
			}
			b.csrf = tok
		}
		if c.Extra == nil {
			c.Extra = contract.Extra{}
		}
		c.Extra["csrf_token"] = b.csrf
		status, raw, err := b.do(ctx, http.MethodPost, "/comments/", c)
		if err != nil {
			return err
		}
		if status >= 200 && status <= 299 {
			return nil
		}
		if status == http.StatusBadRequest && try == 0 && strings.Contains(string(raw), "csrf") {
			b.csrf = ""
			continue
		}
		return fmt.Errorf("POST %s/comments/: HTTP %d: %s", b.base, status, ErrorMessage(raw))
	}
}

func (b *bodhi) csrfToken(ctx context.Context) (string, error) {
	status, raw, err := b.do(ctx, http.MethodGet, "/csrf", nil)
	if err != nil {
		return "", err
	}
	var body struct {
		Token string `json:"csrf_token"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &body) != nil || body.Token == "" {
		return "", fmt.Errorf("GET %s/csrf: HTTP %d, no csrf_token: %s", b.base, status, ErrorMessage(raw))
	}
	return body.Token, nil
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
	resp, err := b.hc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return 0, nil, fmt.Errorf("%s %s%s: %w", method, b.base, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s%s: %w", method, b.base, path, err)
	}
	return resp.StatusCode, raw, nil
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
