package labs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/httpclient"
)

// Client speaks the labs API of a central server: the request, board and
// lab commands, and the lab agent.
type Client struct {
	hub   string // the server's root
	base  string // …/api/v2.0/labs
	token string
	hc    *retryablehttp.Client
	// long has no timeout of its own and tries once: a poll waits, trees
	// stream, and the callers try again themselves.
	long *retryablehttp.Client
}

// NewClient makes a client for the central server at hub (its root URL).
func NewClient(hub, token string, log *slog.Logger) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(hub))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("central server URL %q: want http(s)://host[:port][/path]", clip(hub))
	}
	root := strings.TrimSuffix(strings.TrimRight(u.String(), "/"), APIPrefix)
	root = strings.TrimSuffix(root, "/api/v2.0")
	s := httpclient.Settings{Service: "central server", Timeout: 60 * time.Second, Retries: 2,
		RetryWaitMin: 200 * time.Millisecond, RetryWaitMax: 2 * time.Second, Policy: httpclient.FailFast, Log: log}
	// Each client its own pool of connections, kept for the next poll.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	s.HTTPClient = &http.Client{Transport: tr, Timeout: s.Timeout}
	hc := httpclient.New(s)
	s.Retries, s.HTTPClient = -1, &http.Client{Transport: tr}
	return &Client{hub: root, base: root + APIPrefix, token: token, hc: hc, long: httpclient.New(s)}, nil
}

// Hub is the server's root URL.
func (c *Client) Hub() string { return c.hub }

// StatusError is an answer that is not a success.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("central server: HTTP %d: %s", e.Status, e.Message)
}

// IsStatus tells an answer of the given status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// Unreachable tells an error of the network (nothing answered) from an
// answer.
func Unreachable(err error) bool {
	var se *StatusError
	return err != nil && !errors.As(err, &se) && !errors.Is(err, context.Canceled)
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*retryablehttp.Request, error) {
	var rd any
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = raw
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) check(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		return nil, fmt.Errorf("central server %s: %w", c.hub, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{Status: resp.StatusCode, Message: httpclient.ErrorMessage(raw)}
	}
	return resp, nil
}

// call sends body (when not nil) as JSON and decodes the answer into out
// (when not nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) (int, error) {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.check(c.hc.Do(req))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("central server %s: the answer is not the JSON it sends: %w", c.hub, err)
		}
	}
	return resp.StatusCode, nil
}

// Put queues requests.
func (c *Client) Put(ctx context.Context, reqs ...NewRequest) ([]Request, error) {
	var ans struct {
		Data []Request `json:"data"`
	}
	_, err := c.call(ctx, http.MethodPost, "/requests", reqs, &ans)
	return ans.Data, err
}

// RequestList is a list of requests with the counts by state.
type RequestList struct {
	Data   []Request      `json:"data"`
	Counts map[string]int `json:"counts"`
}

// List lists requests (state, lab, limit).
func (c *Client) List(ctx context.Context, q url.Values) (RequestList, error) {
	var l RequestList
	_, err := c.call(ctx, http.MethodGet, "/requests?"+q.Encode(), nil, &l)
	return l, err
}

// Get reads one request.
func (c *Client) Get(ctx context.Context, id string) (Request, error) {
	var r Request
	_, err := c.call(ctx, http.MethodGet, "/requests/"+url.PathEscape(id), nil, &r)
	return r, err
}

// Cancel cancels a request.
func (c *Client) Cancel(ctx context.Context, id string) (Request, error) {
	var r Request
	_, err := c.call(ctx, http.MethodPost, "/requests/"+url.PathEscape(id)+"/cancel", struct{}{}, &r)
	return r, err
}

// GetRun unpacks a request's artifacts into dir (which must be empty or
// not exist).
func (c *Client) GetRun(ctx context.Context, id, dir string, max int64) error {
	req, err := c.request(ctx, http.MethodGet, "/requests/"+url.PathEscape(id)+"/run", nil)
	if err != nil {
		return err
	}
	resp, err := c.check(c.long.Do(req))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return readTree(resp.Body, dir, max)
}

// Boards lists the boards.
func (c *Client) Boards(ctx context.Context) ([]Board, error) {
	var ans struct {
		Data []Board `json:"data"`
	}
	_, err := c.call(ctx, http.MethodGet, "/boards", nil, &ans)
	return ans.Data, err
}

// PutBoard adds or changes a board (lab is needed with the admin token).
func (c *Client) PutBoard(ctx context.Context, name, lab string, labels Labels) (Board, error) {
	var b Board
	_, err := c.call(ctx, http.MethodPut, "/boards/"+url.PathEscape(name), map[string]any{"lab": lab, "labels": labels}, &b)
	return b, err
}

// RemoveBoard deletes a board.
func (c *Client) RemoveBoard(ctx context.Context, name string) error {
	_, err := c.call(ctx, http.MethodDelete, "/boards/"+url.PathEscape(name), nil, nil)
	return err
}

// WhoAmI names the lab of the client's token.
func (c *Client) WhoAmI(ctx context.Context) (string, error) {
	var ans struct {
		Lab string `json:"lab"`
	}
	_, err := c.call(ctx, http.MethodGet, "/whoami", nil, &ans)
	return ans.Lab, err
}

// Poll asks for the next request the board's labels match, waiting up to
// wait; nil means none came.
func (c *Client) Poll(ctx context.Context, p PollRequest) (*Lease, error) {
	req, err := c.request(ctx, http.MethodPost, "/poll", p)
	if err != nil {
		return nil, err
	}
	resp, err := c.check(c.long.Do(req))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	var l Lease
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("central server %s: the lease is not the JSON it sends: %w", c.hub, err)
	}
	return &l, nil
}

func leasePath(lease, what string) string { return "/leases/" + url.PathEscape(lease) + "/" + what }

// Heartbeat renews a lease, telling the action the run is in.
func (c *Client) Heartbeat(ctx context.Context, lease, action string) error {
	_, err := c.call(ctx, http.MethodPost, leasePath(lease, "heartbeat"), map[string]string{"action": action}, nil)
	return err
}

// Release hands a lease back.
func (c *Client) Release(ctx context.Context, lease string) error {
	_, err := c.call(ctx, http.MethodPost, leasePath(lease, "release"), struct{}{}, nil)
	return err
}

// Task unpacks the lease's task into dir; it returns the commit the tree
// is at and the task's origin.
func (c *Client) Task(ctx context.Context, lease, dir string) (commit, origin string, err error) {
	req, err := c.request(ctx, http.MethodGet, leasePath(lease, "task"), nil)
	if err != nil {
		return "", "", err
	}
	resp, err := c.check(c.long.Do(req))
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if err := readTree(resp.Body, dir, 1<<30); err != nil {
		return "", "", fmt.Errorf("task tree: %w", err)
	}
	return resp.Header.Get("X-Task-Commit"), resp.Header.Get("X-Task-Origin"), nil
}

// PutArtifacts sends a run's artifacts tree, at most max bytes.
func (c *Client) PutArtifacts(ctx context.Context, lease, dir string, max int64) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTree(pw, dir, max)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+leasePath(lease, "artifacts"), pr)
	if err != nil {
		pr.Close()
		return err
	}
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.check(c.long.HTTPClient.Do(req))
	pr.Close()
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PutRun sends a lease's execution: the central server reports it.
func (c *Client) PutRun(ctx context.Context, lease string, exec contract.Execution) (RunAnswer, error) {
	var a RunAnswer
	raw, err := json.Marshal(exec)
	if err != nil {
		return a, err
	}
	_, err = c.call(ctx, http.MethodPost, leasePath(lease, "run"), json.RawMessage(raw), &a)
	return a, err
}
