package reporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/httpclient"
)

// RejectedError is a ResultsDB answer of 4xx: the server refused the
// result and sending it again will not help.
type RejectedError struct {
	Status  int
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("ResultsDB rejected the result (HTTP %d): %s", e.Status, e.Message)
}

// UnavailableError means ResultsDB could not be reached or kept failing
// (network errors, 5xx, 429) after all retries.
type UnavailableError struct {
	Err error
	// Ambiguous: the post may have been stored (the request was sent, the
	// answer was an error or never came).
	Ambiguous bool
	// Status is ResultsDB's answer when it gave one (5xx, 429, 408); 0
	// when no answer came.
	Status int
}

func (e *UnavailableError) Error() string { return "ResultsDB unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// ResultsDBClient speaks the ResultsDB API v2.0 as far as the reporter
// needs it. It works against real ResultsDB 2.x and against ours.
type ResultsDBClient struct {
	base  string // …/api/v2.0, no trailing slash
	token string
	hc    *retryablehttp.Client
	// post retries only failures that surely stored nothing, so that a
	// retry cannot store a result twice; the reporter settles the others.
	post *retryablehttp.Client

	retryMax         int
	waitMin, waitMax time.Duration
	// noBatch: ResultsDB answered that it takes no batches (ResultsDB 2.2
	// has none), so results go one POST each.
	noBatch atomic.Bool
}

// ClientOptions configure a ResultsDBClient.
type ClientOptions struct {
	// Token, when set, is sent as a bearer token.
	Token string
	// HTTPClient is the underlying client (transport, timeout); nil means a
	// fresh one with Timeout.
	HTTPClient *http.Client
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	// RetryMax is how many times a failed request is repeated (default 4,
	// negative: none); RetryWaitMin/Max bound the exponential backoff
	// (default 500 ms, 30 s).
	RetryMax     int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	Log          *slog.Logger
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 500 * time.Millisecond
	}
	return o
}

// NewResultsDBClient makes a client for the API at baseURL; "/api/v2.0" is
// added when the URL does not end with it.
func NewResultsDBClient(baseURL string, o ClientOptions) (*ResultsDBClient, error) {
	o = o.withDefaults()
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ResultsDB URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if !strings.HasSuffix(base, "/api/v2.0") {
		base += "/api/v2.0"
	}
	// GETs retry what may pass on its own: network errors, 5xx and 429
	// (retryablehttp's default policy); a 4xx is an answer.
	c := &ResultsDBClient{base: base, token: o.Token, hc: newRetryClient(o, httpclient.FailFast), post: newRetryClient(o, httpclient.SafePost)}
	c.retryMax, c.waitMin, c.waitMax = c.hc.RetryMax, c.hc.RetryWaitMin, c.hc.RetryWaitMax
	return c, nil
}

// newRetryClient makes the retrying client ResultsDB is called with.
func newRetryClient(o ClientOptions, policy retryablehttp.CheckRetry) *retryablehttp.Client {
	return httpclient.New(httpclient.Settings{Service: "ResultsDB", HTTPClient: o.HTTPClient, Timeout: o.Timeout, Retries: o.RetryMax,
		RetryWaitMin: o.RetryWaitMin, RetryWaitMax: o.RetryWaitMax, Policy: policy, Log: o.Log})
}

// BaseURL is the API root the client talks to (…/api/v2.0).
func (c *ResultsDBClient) BaseURL() string { return c.base }

func (c *ResultsDBClient) do(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	hc := c.hc
	if method == http.MethodPost {
		hc = c.post
	}
	var rd any
	if body != nil {
		rd = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return 0, nil, &UnavailableError{Err: ctx.Err(), Ambiguous: true}
		}
		return 0, nil, &UnavailableError{Err: err, Ambiguous: !httpclient.NotSent(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, &UnavailableError{Err: fmt.Errorf("%s %s: reading the answer: %w", method, u, err)}
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		sure := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout ||
			resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable
		return resp.StatusCode, raw, &UnavailableError{Err: fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, ErrorMessage(raw)), Ambiguous: !sure, Status: resp.StatusCode}
	}
	return resp.StatusCode, raw, nil
}

// PostResult sends one result. It returns a *RejectedError for a 4xx and
// an *UnavailableError when ResultsDB could not take it.
func (c *ResultsDBClient) PostResult(ctx context.Context, p contract.ResultsDBPost) error {
	body, err := p.MarshalJSON() // json.Marshal would check and compact it again
	if err != nil {
		return fmt.Errorf("encoding the post: %w", err)
	}
	status, raw, err := c.do(ctx, http.MethodPost, c.base+"/results", body)
	if err != nil {
		return err
	}
	if status >= 400 {
		return &RejectedError{Status: status, Message: ErrorMessage(raw)}
	}
	if status < 200 || status > 299 {
		return &UnavailableError{Err: fmt.Errorf("POST %s/results: unexpected HTTP %d: %s", c.base, status, ErrorMessage(raw))}
	}
	return nil
}

// ErrBatchUnsupported is PostResults' answer where ResultsDB takes no
// batches: post the results one at a time.
var ErrBatchUnsupported = errors.New("ResultsDB takes no batches of results")

// PostResults sends results in one request, stored all or none (our
// ResultsDB's /results/batch). Where ResultsDB does not have it (404, 405:
// ResultsDB 2.2) it returns ErrBatchUnsupported, then and from then on.
// Otherwise its errors are PostResult's, about the whole batch.
func (c *ResultsDBClient) PostResults(ctx context.Context, posts []contract.ResultsDBPost) error {
	if c.noBatch.Load() {
		return ErrBatchUnsupported
	}
	body, err := contract.MarshalList(posts)
	if err != nil {
		return fmt.Errorf("encoding the batch: %w", err)
	}
	status, raw, err := c.do(ctx, http.MethodPost, c.base+"/results/batch", body)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		c.noBatch.Store(true)
		return ErrBatchUnsupported
	}
	if status >= 400 {
		return &RejectedError{Status: status, Message: ErrorMessage(raw)}
	}
	if status < 200 || status > 299 {
		return &UnavailableError{Err: fmt.Errorf("POST %s/results/batch: unexpected HTTP %d: %s", c.base, status, ErrorMessage(raw))}
	}
	return nil
}

// ErrorMessage pulls a readable message out of an error body; see
// httpclient.ErrorMessage.
func ErrorMessage(raw []byte) string { return httpclient.ErrorMessage(raw) }

func truncate(s string, n int) string { return httpclient.Truncate(s, n) }

// StoredResult is a result as ResultsDB returns it, read leniently: data
// values may be lists or single values, the testcase a name or an object,
// groups uuids or objects, submit_time with or without a timezone.
type StoredResult struct {
	ID         string
	Outcome    string
	Testcase   string
	Note       string
	RefURL     string
	Groups     []string
	Data       map[string][]string
	SubmitTime time.Time
}

func (s *StoredResult) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID         json.Number     `json:"id"`
		Outcome    string          `json:"outcome"`
		Testcase   json.RawMessage `json:"testcase"`
		Note       *string         `json:"note"`
		RefURL     *string         `json:"ref_url"`
		Groups     []any           `json:"groups"`
		Data       map[string]any  `json:"data"`
		SubmitTime *string         `json:"submit_time"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = StoredResult{ID: raw.ID.String(), Outcome: strings.ToUpper(raw.Outcome), Data: map[string][]string{}}
	var name string
	var tc struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(raw.Testcase, &name) == nil {
		s.Testcase = name
	} else if json.Unmarshal(raw.Testcase, &tc) == nil {
		s.Testcase = tc.Name
	}
	if raw.Note != nil {
		s.Note = *raw.Note
	}
	if raw.RefURL != nil {
		s.RefURL = *raw.RefURL
	}
	for _, g := range raw.Groups {
		switch x := g.(type) {
		case string:
			s.Groups = append(s.Groups, x)
		case map[string]any:
			if u, ok := x["uuid"].(string); ok {
				s.Groups = append(s.Groups, u)
			}
		}
	}
	for k, v := range raw.Data {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				s.Data[k] = append(s.Data[k], fmt.Sprint(e))
			}
		case nil:
		default:
			s.Data[k] = []string{fmt.Sprint(x)}
		}
	}
	if raw.SubmitTime != nil {
		t, err := ParseSubmitTime(*raw.SubmitTime)
		if err != nil {
			return err
		}
		s.SubmitTime = t
	}
	return nil
}

// ParseSubmitTime reads ResultsDB's submit_time: naive UTC isoformat
// ("2016-08-15T13:29:06.123456") from real ResultsDB, or RFC 3339.
func ParseSubmitTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05 MST"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("submit_time %q: not an ISO 8601 time", v)
}

// GroupResults lists every result of a group (one execution), following
// the pagination links.
func (c *ResultsDBClient) GroupResults(ctx context.Context, uuid string) ([]StoredResult, error) {
	next := c.base + "/results?" + url.Values{"groups": {uuid}, "limit": {"100"}}.Encode()
	var all []StoredResult
	for page := 0; next != ""; page++ {
		if page >= 1000 {
			return nil, fmt.Errorf("group %s: more than 1000 pages of results", uuid)
		}
		status, raw, err := c.do(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		if status == http.StatusNotFound {
			return all, nil
		}
		if status != http.StatusOK {
			return nil, &UnavailableError{Err: fmt.Errorf("GET %s: HTTP %d: %s", next, status, ErrorMessage(raw))}
		}
		var body struct {
			Data []StoredResult `json:"data"`
			Next *string        `json:"next"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, &UnavailableError{Err: fmt.Errorf("GET %s: unreadable answer: %w", next, err)}
		}
		all = append(all, body.Data...)
		next = ""
		if body.Next != nil {
			next = *body.Next
		}
	}
	return all, nil
}

// fingerprint identifies a result by what ResultsDB keeps of it, verbatim,
// in 64 bits (FNV-1a of the fields, each ended by a zero byte): a report
// of hundreds of thousands of results counts them in a few MiB.
func fingerprint(testcase, outcome, note, refURL string, item, typ, arch []string) uint64 {
	slices.Sort(arch)
	h := uint64(fnvOffset)
	for _, s := range [...]string{testcase, strings.ToUpper(outcome), note, refURL, strings.Join(item, ","), strings.Join(typ, ","), strings.Join(arch, ",")} {
		h = fnv1a(h, s) * fnvPrime // and the zero byte that ends it
	}
	return h
}

// fnv1a folds s into the FNV-1a hash h: hash/fnv's, without the copy of
// each string its Write takes (a few allocations a result, on a report's
// hot path).
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

const fnvOffset, fnvPrime = 14695981039346656037, 1099511628211

func postFingerprint(p contract.ResultsDBPost) uint64 {
	list := func(v any) []string {
		switch x := v.(type) {
		case nil:
			return nil
		case string:
			return []string{x}
		case []string:
			return append([]string(nil), x...)
		case []any:
			var out []string
			for _, e := range x {
				out = append(out, fmt.Sprint(e))
			}
			return out
		}
		return []string{fmt.Sprint(v)}
	}
	return fingerprint(p.Testcase.Name, string(p.Outcome), p.Note, p.RefURL, list(p.Data["item"]), list(p.Data["type"]), list(p.Data["arch"]))
}

// storedCounts counts a group's stored results by fingerprint.
func storedCounts(stored []StoredResult) map[uint64]int {
	counts := make(map[uint64]int, len(stored))
	for _, s := range stored {
		counts[storedFingerprint(s)]++
	}
	return counts
}

func storedFingerprint(s StoredResult) uint64 {
	return fingerprint(s.Testcase, s.Outcome, s.Note, s.RefURL, s.Data["item"], s.Data["type"], append([]string(nil), s.Data["arch"]...))
}

// isUnavailable tells a temporary failure from a final one.
func isUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

func oneLine(s string) string { return httpclient.OneLine(s) }
