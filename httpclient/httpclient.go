// Package httpclient makes the retrying HTTP client that every outside
// service (Koji, Bodhi) is called with: bounded retries with backoff, and
// the last answer or error kept instead of a generic "giving up".
package httpclient

import (
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Settings tune the client; zero values take the defaults below. Retries
// below zero means none.
type Settings struct {
	Timeout      time.Duration // one request; default 60 s
	Retries      int           // default 4
	RetryWaitMin time.Duration // default 1 s
	RetryWaitMax time.Duration // default 30 s
	Log          *slog.Logger
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
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient.Timeout = s.Timeout
	rc.RetryMax = s.Retries
	rc.RetryWaitMin, rc.RetryWaitMax = s.RetryWaitMin, s.RetryWaitMax
	rc.Logger = s.Log
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return rc
}
