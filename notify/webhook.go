package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/taskotron-go/taskotron/redact"
)

// Webhook request headers. The signature is HMAC-SHA256 of the body
// under the subscription's secret; the body holds the same timestamp as
// the header, so a receiver that checks the signature and the age of
// sent_at refuses replays.
const (
	HeaderSignature = "X-Taskotron-Signature"
	HeaderTimestamp = "X-Taskotron-Timestamp"
	HeaderDelivery  = "X-Taskotron-Delivery"
	HeaderEvent     = "X-Taskotron-Event"
)

// WebhookBody is what a webhook receives, one result per request.
type WebhookBody struct {
	// Delivery is the dedup key: the same on every attempt.
	Delivery     string `json:"delivery"`
	Subscription int64  `json:"subscription"`
	// SentAt is this attempt's time (RFC 3339, UTC), signed with the rest.
	SentAt     string  `json:"sent_at"`
	Regression bool    `json:"regression"`
	Result     Result  `json:"result"`
	Previous   *Result `json:"previous,omitempty"`
}

// Sign is the X-Taskotron-Signature value of a body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether a signature header is the body's under secret,
// in constant time: what a receiver does.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// webhookClient makes the client webhooks are posted with. A redirect is
// an answer, not delivery: the signed body goes only where the
// subscription says.
func webhookClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post sends one notification to a subscription's webhook. Any 2xx
// answer is delivery; anything else is a failure to back off from.
// errGone is a webhook's 410: its receiver says it is gone for good, as
// GitHub's and Slack's receivers do, so its subscription ends.
var errGone = errors.New("the receiver is gone for good: its subscription ends")

func post(ctx context.Context, client *http.Client, sub Subscription, n Notification, now time.Time) error {
	body, err := json.Marshal(WebhookBody{Delivery: n.Key(), Subscription: sub.ID, SentAt: now.UTC().Format(time.RFC3339),
		Regression: n.Previous != nil, Result: n.Result, Previous: n.Previous})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", redact.URL(sub.Webhook), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "taskotron-notify")
	req.Header.Set(HeaderSignature, Sign(sub.secret, body))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderDelivery, n.Key())
	req.Header.Set(HeaderEvent, "result.new")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", redact.URL(sub.Webhook), redact.URLError(err, sub.Webhook))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusGone {
		return fmt.Errorf("webhook %s answered %s: %w", redact.URL(sub.Webhook), resp.Status, errGone)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", redact.URL(sub.Webhook), resp.Status)
	}
	return nil
}
