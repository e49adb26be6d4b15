package httpclient

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetriesThenKeepsTheLastAnswer(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := New(Settings{Retries: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("want the last answer, got error %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || calls.Load() != 3 {
		t.Errorf("status %d after %d calls, want 503 after 3", resp.StatusCode, calls.Load())
	}
}

func TestDefaultsAndNoRetries(t *testing.T) {
	if c := New(Settings{}); c.RetryMax != 4 || c.HTTPClient.Timeout != time.Minute {
		t.Errorf("defaults: retries %d, timeout %s", c.RetryMax, c.HTTPClient.Timeout)
	}
	if c := New(Settings{Retries: -1}); c.RetryMax != 0 {
		t.Errorf("negative retries: %d", c.RetryMax)
	}
}
