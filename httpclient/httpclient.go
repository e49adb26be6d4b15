// Package httpclient makes the retrying HTTP client that every outside
// service (Koji, Bodhi, dist-git, ResultsDB) is called with: bounded retries
// with backoff, a retry policy that fits the request (a POST is repeated
// only when the service surely did not take it), the last answer or error
// kept instead of a generic "giving up", and a readable message from an
// error body. It imports no other package of the project.
package httpclient

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Settings tune the client; zero values take the defaults below. Retries
// below zero means none.
type Settings struct {
	// Service names the service in the log line of a retry ("Koji").
	Service      string
	Timeout      time.Duration // one request; default 60 s (ignored with HTTPClient)
	Retries      int           // default 4
	RetryWaitMin time.Duration // default 1 s
	RetryWaitMax time.Duration // default 30 s; a longer Retry-After is not waited out
	// Policy decides which failures are retried; nil means Idempotent.
	Policy retryablehttp.CheckRetry
	// HTTPClient is the underlying client (its transport and timeout); nil
	// means a fresh one.
	HTTPClient *http.Client
	// Log gets a warning for every retry.
	Log *slog.Logger
}

// New makes the client. Its RetryMax is the number of retries in force.
func New(s Settings) *retryablehttp.Client {
	if s.Timeout == 0 {
		s.Timeout = 60 * time.Second
	}
	switch {
	case s.Retries == 0:
		s.Retries = 4
	case s.Retries < 0:
		s.Retries = 0
	}
	if s.RetryWaitMin == 0 {
		s.RetryWaitMin = time.Second
	}
	if s.RetryWaitMax == 0 {
		s.RetryWaitMax = 30 * time.Second
	}
	if s.Policy == nil {
		s.Policy = Idempotent
	}
	if s.Service == "" {
		s.Service = "HTTP"
	}
	rc := retryablehttp.NewClient()
	if s.HTTPClient != nil {
		rc.HTTPClient = s.HTTPClient
	} else {
		rc.HTTPClient.Timeout = s.Timeout
	}
	rc.RetryMax = s.Retries
	rc.RetryWaitMin, rc.RetryWaitMax = s.RetryWaitMin, s.RetryWaitMax
	rc.CheckRetry = s.Policy
	// A Retry-After longer than RetryWaitMax is not waited out: the caller
	// keeps what could not be sent (a spool) or fails the action instead of
	// hanging on a service's say-so.
	rc.Backoff = func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
	}
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.Logger = nil
	if s.Log != nil {
		log, service := s.Log, s.Service
		rc.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
			if attempt > 0 {
				log.Warn("retrying "+service+" request", "method", req.Method, "url", req.URL.Redacted(), "attempt", attempt+1)
			}
		}
	}
	return rc
}

// Idempotent is the policy for requests that may be repeated (GETs):
// network errors, 5xx and 429 are retried, any other answer is final.
func Idempotent(ctx context.Context, resp *http.Response, err error) (bool, error) {
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// FailFast is Idempotent, except that a refused connection is not retried:
// nothing listens there, so waiting through the backoff only holds the
// caller up when it has a better place for its work (a spool).
func FailFast(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err != nil && Refused(err) && ctx.Err() == nil {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// SafePost retries a request that must not be stored twice only when the
// service cannot have taken it: the connection was never made (but not when
// it was refused: see FailFast), or the answer says it was not processed
// (408, 429, 502, 503).
func SafePost(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return NotSent(err) && !Refused(err), nil
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return true, nil
	}
	return false, nil
}

// NotSent tells whether a transport error happened before the request
// left: a failed dial.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Refused tells a connection nothing accepted (ECONNREFUSED).
func Refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// ErrorMessage pulls a readable one-line message out of an error body:
// {"message": "..."} (ResultsDB, Flask), pydantic's {"detail": [...]},
// {"error"/"errors": ...}, or the text itself, at most 500 bytes.
func ErrorMessage(raw []byte) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil && m != nil {
		for _, key := range []string{"message", "detail", "error", "errors"} {
			v, ok := m[key]
			if !ok {
				continue
			}
			if s, isStr := v.(string); isStr {
				if s = OneLine(s); s != "" {
					return Truncate(s, 500)
				}
				continue // an empty message says nothing: look further
			}
			b, _ := json.Marshal(v)
			return string(b)
		}
		b, _ := json.Marshal(m)
		return Truncate(string(b), 500)
	}
	s := OneLine(string(raw))
	if s == "" {
		return "(empty answer)"
	}
	return Truncate(s, 500)
}

// OneLine folds whitespace, newlines included, into single spaces.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Truncate cuts s to n bytes, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
