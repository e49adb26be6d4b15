package reporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bodhi"
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
	// Timeout bounds one request to Bodhi; Retries is how often a failed one
	// is retried (0: as for ResultsDB; negative: none).
	Timeout time.Duration
	Retries int
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
type BodhiUnavailableError = bodhi.UnavailableError

func isBodhiUnavailable(err error) bool {
	var u *BodhiUnavailableError
	return errors.As(err, &u)
}

// rejected turns Bodhi's final refusal of a request made for a comment into
// a *CommentRejectedError naming the update (or "updates of build NVR").
func rejected(update string, err error) error {
	var ae *bodhi.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := ae.Message
	if ae.Method != http.MethodPost {
		// Say which request it was: not the comment itself.
		msg = ae.Method + " " + ae.Path + ": " + msg
	}
	return &CommentRejectedError{Update: update, Status: ae.Status, Message: msg}
}

// bodhi talks to Bodhi for the reporter and keeps the comment rules: the
// outcomes that get a comment, and, on disk, which comment was made when
// (no identical comment within the span).
type commenter struct {
	client *bodhi.Client
	on     map[contract.Outcome]bool
	span   time.Duration
	state  string // file: comment key -> time sent; "" keeps it in memory
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	sent map[string]time.Time
	// down remembers that Bodhi was away, so that the outage is logged once
	// and reports do not each wait through retries (see resting).
	down     bool
	lastFail time.Time

	// afterPost, set by tests, runs once Bodhi took a comment and before
	// the spool knows; an error stops there, as a crash would.
	afterPost func() error
}

func newCommenter(o BodhiOptions, stateFile string, co ClientOptions, log *slog.Logger) (*commenter, error) {
	co = co.withDefaults()
	if err := bodhi.CheckURL(o.URL); err != nil {
		return nil, err
	}
	if o.Timeout > 0 {
		co.Timeout = o.Timeout
	}
	if o.Retries != 0 {
		co.RetryMax = o.Retries
	}
	client := bodhi.New(o.URL, bodhi.Options{Token: o.Token, FailFast: true, HTTPClient: co.HTTPClient, Timeout: co.Timeout,
		Retries: co.RetryMax, RetryWaitMin: co.RetryWaitMin, RetryWaitMax: co.RetryWaitMax, Log: log})
	b := &commenter{client: client, span: o.Span, state: stateFile, log: log, now: time.Now, sent: map[string]time.Time{}}
	var err error
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
func (b *commenter) recent(c contract.BodhiComment) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.sent[commentKey(c)]
	return at, ok && b.now().Sub(at) < b.span
}

// remember records that the comment is on Bodhi as of at, durably.
func (b *commenter) remember(c contract.BodhiComment, at time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent[commentKey(c)] = at
	return b.save(b.now())
}

// save writes the history, forgetting what is older than the span.
func (b *commenter) save(now time.Time) error {
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
func (b *commenter) wentDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		b.log.Warn("Bodhi unavailable; comments wait in the spool until it is back", "err", err)
	}
	b.down = true
	b.lastFail = time.Now()
}

func (b *commenter) cameBack() {
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
func (b *commenter) resting(recheck time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down && time.Since(b.lastFail) < recheck
}

// send posts one comment. It returns a *CommentRejectedError or a
// *BodhiUnavailableError when Bodhi did not take it.
func (b *commenter) send(ctx context.Context, c contract.BodhiComment) error {
	_, err := b.client.Comment(ctx, c)
	return rejected(c.Update, err)
}

// posted tells whether Bodhi already holds the comment since the given time.
func (b *commenter) posted(ctx context.Context, c contract.BodhiComment, since time.Time) (bool, error) {
	found, err := b.client.HasComment(ctx, c, since)
	return found, rejected(c.Update, err)
}

// updatesFor lists the aliases of the updates holding a Koji build.
func (b *commenter) updatesFor(ctx context.Context, nvr string) ([]string, error) {
	us, err := b.client.UpdatesForBuild(ctx, nvr)
	if err != nil {
		return nil, rejected("updates of build "+nvr, err)
	}
	var out []string
	for _, u := range us {
		if u.Alias != "" {
			out = append(out, u.Alias)
		}
	}
	return out, nil
}
