package execdb

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
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/httpclient"
	"github.com/taskotron-go/taskotron/redact"
)

// Client speaks the executions API of a central server.
type Client struct {
	base  string // …/api/v2.0
	token string
	hc    *retryablehttp.Client
	// follow has no timeout of its own: a log read may wait for data.
	follow *retryablehttp.Client
}

// NewClient makes a client for the central server at base (its root, or
// …/api/v2.0). Requests fail fast when nothing listens: the callers keep
// what they could not send (an outbox) and try again.
func NewClient(base, token string, log *slog.Logger) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("executions server URL %q: want http(s)://host[:port][/path]", redact.URL(base))
	}
	b := strings.TrimRight(u.String(), "/")
	if !strings.HasSuffix(b, APIPrefix) {
		b += APIPrefix
	}
	s := httpclient.Settings{Service: "executions server", Timeout: 30 * time.Second, Retries: 2,
		RetryWaitMin: 200 * time.Millisecond, RetryWaitMax: 2 * time.Second, Policy: httpclient.FailFast, Log: log}
	hc := httpclient.New(s)
	s.Timeout = 0
	s.HTTPClient = &http.Client{}
	return &Client{base: b, token: token, hc: hc, follow: httpclient.New(s)}, nil
}

// StatusError is an answer that is not a success.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("executions server: HTTP %d: %s", e.Status, e.Message)
}

// Final tells an answer that sending again cannot change (a 4xx but 408,
// 409 and 429).
func Final(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500 &&
		se.Status != http.StatusRequestTimeout && se.Status != http.StatusConflict && se.Status != http.StatusTooManyRequests
}

func (c *Client) do(ctx context.Context, hc *retryablehttp.Client, method, path, ctype string, body []byte) (*http.Response, error) {
	var rd any
	if body != nil {
		rd = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("executions server %s: %w", redact.URL(c.base), redact.URLError(err, c.base))
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusConflict {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{Status: resp.StatusCode, Message: httpclient.ErrorMessage(raw)}
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, c.hc, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("executions server: the answer is not the JSON it sends: %w", err)
	}
	return nil
}

// Post sends events.
func (c *Client) Post(ctx context.Context, evs []contract.ExecutionEvent) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, c.hc, http.MethodPost, "/executions/events", "application/json", body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// AppendLog sends log data that starts at pos. An *OffsetError says the
// server holds a different amount: resume from its Size.
func (c *Client) AppendLog(ctx context.Context, uuid string, attempt int, name string, pos int64, data []byte) (int64, error) {
	path := fmt.Sprintf("/executions/%s/logs/%d/%s?offset=%d", url.PathEscape(uuid), attempt, url.PathEscape(name), pos)
	resp, err := c.do(ctx, c.hc, http.MethodPut, path, "application/octet-stream", data)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var ans struct {
		Size int64 `json:"size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 0, fmt.Errorf("executions server: log answer: %w", err)
	}
	if resp.StatusCode == http.StatusConflict {
		return ans.Size, &OffsetError{Size: ans.Size}
	}
	return ans.Size, nil
}

// CloseLogs says an attempt's logs are whole.
func (c *Client) CloseLogs(ctx context.Context, uuid string, attempt int) error {
	resp, err := c.do(ctx, c.hc, http.MethodPost, fmt.Sprintf("/executions/%s/logs/%d/closed", url.PathEscape(uuid), attempt), "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// List reads a page of executions; q holds the API's filters (state,
// item, taskname, arch, since, page, limit).
func (c *Client) List(ctx context.Context, q url.Values) (Page, error) {
	var p Page
	return p, c.getJSON(ctx, "/executions?"+q.Encode(), &p)
}

// Get reads one execution with its history.
func (c *Client) Get(ctx context.Context, uuid string) (Detail, error) {
	var d Detail
	err := c.getJSON(ctx, "/executions/"+url.PathEscape(uuid), &d)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return d, fmt.Errorf("execution %s: %w", uuid, ErrNotFound)
	}
	return d, err
}

// Queue reads what waits and what runs.
func (c *Client) Queue(ctx context.Context) (Queue, error) {
	var q Queue
	return q, c.getJSON(ctx, "/queue", &q)
}

// ReadLog reads a log from pos, waiting up to wait for data; final says
// nothing more will come.
func (c *Client) ReadLog(ctx context.Context, uuid string, attempt int, name string, pos int64, wait time.Duration) (data []byte, final bool, err error) {
	path := fmt.Sprintf("/executions/%s/logs/%d/%s?offset=%d&wait=%s", url.PathEscape(uuid), attempt, url.PathEscape(name), pos, wait)
	resp, err := c.do(ctx, c.follow, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxChunk+1))
	if err != nil {
		return nil, false, err
	}
	final, _ = strconv.ParseBool(resp.Header.Get("X-Log-Final"))
	return data, final, nil
}
