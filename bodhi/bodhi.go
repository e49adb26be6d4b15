// Package bodhi is a client of Bodhi's REST API: updates (GET /updates/…)
// and comments (GET /csrf, POST /comments/), with retries and backoff.
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
	"strings"
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

// UnavailableError means Bodhi could not be used even after retries.
type UnavailableError struct {
	What string
	Err  error
}

func (e *UnavailableError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// APIError is a 4xx answer with Bodhi's error list.
type APIError struct {
	What   string
	Status int
	Errors []struct {
		Location    string `json:"location"`
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"errors"`
}

func (e *APIError) Error() string {
	var parts []string
	for _, x := range e.Errors {
		parts = append(parts, fmt.Sprintf("%s.%s: %s", x.Location, x.Name, x.Description))
	}
	if len(parts) == 0 {
		parts = append(parts, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.What, e.Status, strings.Join(parts, "; "))
}

// Options tune a Client; zero values get defaults.
type Options struct {
	Timeout                    time.Duration
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	// Token, when set, is sent as a bearer token (Bodhi's OIDC auth).
	Token string
	Log   *slog.Logger
}

// Client talks to one Bodhi server. It is safe for concurrent use.
type Client struct {
	base    string
	http    *retryablehttp.Client
	token   string
	retries int
}

// New makes a client for the Bodhi at baseURL (e.g. https://bodhi.fedoraproject.org).
func New(baseURL string, o Options) *Client {
	rc := httpclient.New(httpclient.Settings{Timeout: o.Timeout, Retries: o.Retries,
		RetryWaitMin: o.RetryWaitMin, RetryWaitMax: o.RetryWaitMax, Log: o.Log})
	o.Retries = rc.RetryMax
	if o.Log == nil {
		o.Log = rc.Logger.(*slog.Logger)
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), http: rc, token: o.Token, retries: o.Retries}
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	what := fmt.Sprintf("bodhi %s %s%s", method, c.base, path)
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, raw)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnavailableError{What: what, Err: fmt.Errorf("after %d retries: %w", c.retries, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &UnavailableError{What: what, Err: err}
	}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		// Not a verdict on the request: Bodhi (or its proxy) is busy.
		return &UnavailableError{What: what, Err: fmt.Errorf("HTTP %s", resp.Status)}
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		ae := &APIError{What: what, Status: resp.StatusCode}
		json.Unmarshal(data, ae)
		return ae
	case resp.StatusCode != http.StatusOK:
		return &UnavailableError{What: what, Err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &UnavailableError{What: what, Err: fmt.Errorf("answer is not the expected JSON: %w", err)}
	}
	return nil
}

// Update fetches an update by alias (FEDORA-2024-…).
func (c *Client) Update(ctx context.Context, alias string) (Update, error) {
	var out struct {
		Update Update `json:"update"`
	}
	if err := c.do(ctx, http.MethodGet, "/updates/"+url.PathEscape(alias), nil, &out); err != nil {
		return Update{}, err
	}
	if out.Update.Alias == "" {
		return Update{}, &UnavailableError{What: "bodhi update " + alias, Err: errors.New("answer has no update")}
	}
	return out.Update, nil
}

// UpdatesForBuild lists the updates that contain a build (by NVR).
func (c *Client) UpdatesForBuild(ctx context.Context, nvr string) ([]Update, error) {
	var out struct {
		Updates []Update `json:"updates"`
	}
	if err := c.do(ctx, http.MethodGet, "/updates/?builds="+url.QueryEscape(nvr), nil, &out); err != nil {
		return nil, err
	}
	return out.Updates, nil
}

// Comment posts a comment on an update: a CSRF token from GET /csrf, then
// POST /comments/ as Bodhi's own client does.
func (c *Client) Comment(ctx context.Context, bc contract.BodhiComment) (Comment, error) {
	var tok struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := c.do(ctx, http.MethodGet, "/csrf", nil, &tok); err != nil {
		return Comment{}, err
	}
	body := map[string]any{"update": bc.Update, "text": bc.Text, "karma": bc.Karma, "csrf_token": tok.CSRFToken}
	var out struct {
		Comment Comment `json:"comment"`
	}
	if err := c.do(ctx, http.MethodPost, "/comments/", body, &out); err != nil {
		return Comment{}, err
	}
	return out.Comment, nil
}
