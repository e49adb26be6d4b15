// Package bodhi is the one client of Bodhi's REST API that the project
// has: updates (GET /updates/…), comments (GET /csrf, POST /comments/, GET
// /comments/ to find one an earlier POST may have stored), with retries and
// backoff from httpclient. It sorts Bodhi's answers into an answer, a final
// refusal (*APIError, ErrNotFound) or Bodhi being away (*UnavailableError),
// which the directives and the reporter act on. It imports contract and
// httpclient only.
package bodhi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/httpclient"
)

// Update is the part of a Bodhi update taskotron uses.
type Update struct {
	Alias   string  `json:"alias"`
	Title   string  `json:"title"`
	Status  string  `json:"status"`
	Request *string `json:"request"`
	Release Release `json:"release"`
	Builds  []Build `json:"builds"`
}

// Release is an update's release ("F40", dist tag "f40").
type Release struct {
	Name    string `json:"name"`
	DistTag string `json:"dist_tag"`
}

// Build is one Koji build of an update.
type Build struct {
	NVR   string `json:"nvr"`
	Epoch int    `json:"epoch"`
}

// Comment is what Bodhi answers to a new comment.
type Comment struct {
	ID     int64  `json:"id"`
	Text   string `json:"text"`
	Karma  int    `json:"karma"`
	Update struct {
		Alias string `json:"alias"`
	} `json:"update"`
}

// ErrNotFound is returned for an update Bodhi does not know.
var ErrNotFound = errors.New("not found")

// UnavailableError means Bodhi could not take a request now (network
// errors, 5xx, 408, 429, after the retries).
type UnavailableError struct {
	Err error
	// Ambiguous: a POST may have been stored (the request went out, no
	// clear answer came back).
	Ambiguous bool
}

func (e *UnavailableError) Error() string { return "Bodhi unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// APIError is a final 4xx answer (other than 408 and 429) with Bodhi's
// error list: asking again cannot help.
type APIError struct {
	Method string
	// Path is the request's path without its query.
	Path   string
	Status int
	// Message is Bodhi's error list in one line.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("Bodhi %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// Is makes a 404 match ErrNotFound.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Options tune a Client; zero values get defaults.
type Options struct {
	Timeout                    time.Duration
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	// FailFast does not retry a refused connection: for a caller that
	// keeps what it could not send (the reporter's spool).
	FailFast bool
	// Token, when set, is sent as a bearer token (Bodhi's OIDC auth).
	Token string
	// HTTPClient is the underlying client; nil means a fresh one.
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Client talks to one Bodhi server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	// get retries what may pass on its own; post retries only failures
	// that surely stored nothing, since Bodhi stores every POST it takes
	// as a new comment.
	get, post *retryablehttp.Client

	mu   sync.Mutex
	csrf string
}

// New makes a client for the Bodhi at baseURL (e.g. https://bodhi.fedoraproject.org).
func New(baseURL string, o Options) *Client {
	s := httpclient.Settings{Service: "Bodhi", Timeout: o.Timeout, Retries: o.Retries,
		RetryWaitMin: o.RetryWaitMin, RetryWaitMax: o.RetryWaitMax, HTTPClient: o.HTTPClient, Log: o.Log}
	if o.FailFast {
		s.Policy = httpclient.FailFast
	}
	get := httpclient.New(s)
	s.Policy = httpclient.SafePost
	return &Client{base: strings.TrimRight(baseURL, "/"), token: o.Token, get: get, post: httpclient.New(s)}
}

// CheckURL says what is wrong with a Bodhi base URL, if anything.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("Bodhi URL %q: want http(s)://host[:port][/path]", raw)
	}
	return nil
}

// URL is the Bodhi the client talks to.
func (c *Client) URL() string { return c.base }

// Update fetches an update by alias (FEDORA-2024-…).
func (c *Client) Update(ctx context.Context, alias string) (Update, error) {
	var out struct {
		Update Update `json:"update"`
	}
	if err := c.call(ctx, http.MethodGet, "/updates/"+url.PathEscape(alias), nil, &out); err != nil {
		return Update{}, err
	}
	if out.Update.Alias == "" {
		return Update{}, &UnavailableError{Err: fmt.Errorf("GET %s/updates/%s: the answer has no update", c.base, alias)}
	}
	return out.Update, nil
}

// UpdatesForBuild lists the updates that contain a build (by NVR).
func (c *Client) UpdatesForBuild(ctx context.Context, nvr string) ([]Update, error) {
	var out struct {
		Updates []Update `json:"updates"`
	}
	q := url.Values{"builds": {nvr}, "rows_per_page": {"100"}}
	if err := c.call(ctx, http.MethodGet, "/updates/?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return out.Updates, nil
}

// Comment posts a comment on an update with Bodhi 2's CSRF token (GET
// /csrf, kept for the next comment), as Bodhi's own client does; a stale
// token is fetched again once. Only what SaveCommentSchema reads is sent:
// keys the comment picked up on its way (e.g. "build") are not Bodhi's
// business.
func (c *Client) Comment(ctx context.Context, bc contract.BodhiComment) (Comment, error) {
	for try := 0; ; try++ {
		tok, err := c.csrfToken(ctx)
		if err != nil {
			return Comment{}, err
		}
		body := map[string]any{"update": bc.Update, "text": bc.Text, "karma": bc.Karma, "csrf_token": tok}
		var out struct {
			Comment Comment `json:"comment"`
		}
		err = c.call(ctx, http.MethodPost, "/comments/", body, &out)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && try == 0 && strings.Contains(strings.ToLower(ae.Message), "csrf") {
			c.mu.Lock()
			c.csrf = ""
			c.mu.Unlock()
			continue
		}
		return out.Comment, err
	}
}

func (c *Client) csrfToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok := c.csrf
	c.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	var body struct {
		Token string `json:"csrf_token"`
	}
	if err := c.call(ctx, http.MethodGet, "/csrf", nil, &body); err != nil {
		return "", err
	}
	if body.Token == "" {
		return "", &UnavailableError{Err: fmt.Errorf("GET %s/csrf: the answer has no csrf_token", c.base)}
	}
	c.mu.Lock()
	c.csrf = body.Token
	c.mu.Unlock()
	return body.Token, nil
}

// HasComment tells whether Bodhi already holds the comment: the same text
// on the same update since the given time. Bodhi stores every POST as a new
// comment (nothing makes it idempotent), but listing comments is safe, so a
// comment whose earlier POST went out without a clear answer is looked for
// before it is sent again.
func (c *Client) HasComment(ctx context.Context, bc contract.BodhiComment, since time.Time) (bool, error) {
	want := httpclient.OneLine(bc.Text)
	since = since.UTC()
	for page := 1; page <= 10; page++ {
		q := url.Values{"updates": {bc.Update}, "since": {since.Format("2006-01-02T15:04:05")},
			"rows_per_page": {"100"}, "page": {strconv.Itoa(page)}}
		var body struct {
			Comments []struct {
				Text      string `json:"text"`
				Timestamp string `json:"timestamp"`
			} `json:"comments"`
			Pages int `json:"pages"`
		}
		if err := c.call(ctx, http.MethodGet, "/comments/?"+q.Encode(), nil, &body); err != nil {
			return false, err
		}
		for _, x := range body.Comments {
			if httpclient.OneLine(x.Text) != want {
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

// call sends one request and sorts the answer: 2xx is decoded into out;
// 408, 429 and 5xx mean Bodhi is away for now; any other 4xx is final.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	pathOnly, _, _ := strings.Cut(path, "?")
	status, raw, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s %s%s: HTTP %d", method, c.base, pathOnly, status)
	switch {
	case status >= 200 && status <= 299:
		if err := json.Unmarshal(raw, out); err != nil {
			return &UnavailableError{Err: fmt.Errorf("%s: the answer is not the JSON Bodhi sends: %w", what, err)}
		}
		return nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		// Bodhi (or its proxy) did not take the request in.
		return &UnavailableError{Err: fmt.Errorf("%s: %s", what, Message(raw))}
	case status >= 400 && status <= 499:
		return &APIError{Method: method, Path: pathOnly, Status: status, Message: Message(raw)}
	}
	// A 500 or 504 may come after the comment was stored; 502 and 503 say
	// the request was not processed.
	sure := status == http.StatusBadGateway || status == http.StatusServiceUnavailable
	return &UnavailableError{Err: fmt.Errorf("%s: %s", what, Message(raw)), Ambiguous: method == http.MethodPost && !sure}
}

func (c *Client) do(ctx context.Context, method, path string, v any) (int, []byte, error) {
	var body any
	if v != nil {
		raw, err := json.Marshal(v)
		if err != nil {
			return 0, nil, err
		}
		body = raw
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := c.get
	if method == http.MethodPost {
		hc = c.post
	}
	resp, err := hc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		sent := method == http.MethodPost && (ctx.Err() != nil || !httpclient.NotSent(err))
		return 0, nil, &UnavailableError{Err: fmt.Errorf("%s %s%s: %w", method, c.base, path, err), Ambiguous: sent}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, &UnavailableError{Err: fmt.Errorf("%s %s%s: reading the answer: %w", method, c.base, path, err), Ambiguous: method == http.MethodPost}
	}
	return resp.StatusCode, raw, nil
}

// Message reads Cornice's error list ({"errors": [{location, name,
// description}]}) as Bodhi sends it, in one line; other bodies as
// httpclient.ErrorMessage reads them.
func Message(raw []byte) string {
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
			where, what := httpclient.OneLine(strings.Trim(e.Location+"."+e.Name, ".")), httpclient.OneLine(e.Description)
			switch {
			case where != "" && what != "":
				parts = append(parts, where+": "+what)
			case where+what != "":
				parts = append(parts, where+what)
			}
		}
		if len(parts) > 0 {
			return httpclient.Truncate(strings.Join(parts, "; "), 500)
		}
	}
	return httpclient.ErrorMessage(raw)
}
