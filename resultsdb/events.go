package resultsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/taskotron-go/taskotron/redact"
)

// DefaultTopic is the routing key of new-result messages (reference §6.5).
const DefaultTopic = "resultsdb.result.new"

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// URL of the AMQP broker, like amqp://guest:guest@127.0.0.1:5672/.
	URL string
	// Exchange is the topic exchange; empty means amq.topic.
	Exchange string
	// Topic is the routing key; empty means DefaultTopic.
	Topic string
	// BaseURL starts the href links in message bodies, as in the API.
	BaseURL string
	// Poll is how often the outbox is checked without being told; 0: 2s.
	Poll time.Duration
	// Lease is how long a claimed entry waits for its broker confirm
	// before any publisher may send it again; 0: 30s.
	Lease time.Duration
	Log   *slog.Logger
}

// Publisher sends the outbox's resultsdb.result.new messages to AMQP. An
// entry leaves the outbox only once the broker has confirmed its message,
// so a crash or an outage delays messages but loses none (a message may be
// sent twice, as with any at-least-once bus). Entries are leased, so
// several servers sharing one PostgreSQL database share the work.
type Publisher struct {
	store Store
	opts  PublisherOptions
	log   *slog.Logger
}

// NewPublisher makes a Publisher; Run does the work.
func NewPublisher(store Store, opts PublisherOptions) *Publisher {
	if opts.Exchange == "" {
		opts.Exchange = "amq.topic"
	}
	if opts.Topic == "" {
		opts.Topic = DefaultTopic
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Publisher{store: store, opts: opts, log: log}
}

// notifier is how a store tells the publisher that an event was queued.
type notifier interface{ events() <-chan struct{} }

func (s *sqlStore) events() <-chan struct{} { return s.notify }

// Run publishes until ctx ends, reconnecting with backoff after failures.
func (p *Publisher) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("result events: broker session ended; retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// session holds one broker connection and drains the outbox through it.
func (p *Publisher) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(p.opts.URL, amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", Redact(p.opts.URL), redact.URLError(err, p.opts.URL))
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable publisher confirms: %w", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	var wake <-chan struct{}
	if n, ok := p.store.(notifier); ok {
		wake = n.events()
	}
	p.log.Info("result events: connected", "broker", Redact(p.opts.URL), "exchange", p.opts.Exchange, "topic", p.opts.Topic)
	for {
		n, err := p.drain(ctx, ch)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-closed:
			if e == nil {
				return errors.New("connection closed")
			}
			return e
		case <-wake:
		case <-time.After(p.opts.Poll):
		}
	}
}

// drain publishes one batch from the outbox and removes what the broker
// confirmed. It returns how many entries it removed.
func (p *Publisher) drain(ctx context.Context, ch *amqp.Channel) (int, error) {
	events, err := p.store.ClaimEvents(ctx, 100, p.opts.Lease)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	type pending struct {
		id      int64
		confirm *amqp.DeferredConfirmation
	}
	var sent []pending
	var done []int64
	for _, e := range events {
		res, err := p.store.Result(ctx, e.ResultID)
		if errors.Is(err, ErrNotFound) {
			done = append(done, e.ID) // nothing left to announce
			continue
		}
		if err != nil {
			return 0, err
		}
		body, err := json.Marshal(resultOut(p.opts.BaseURL, res))
		if err != nil {
			return 0, fmt.Errorf("encode result %d: %w", res.ID, err)
		}
		msg := amqp.Publishing{
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			DeliveryMode:    amqp.Persistent,
			MessageId:       uuid.NewString(),
			Timestamp:       time.Now().UTC(),
			Headers: amqp.Table{
				"fedora_messaging_schema":   "base.message",
				"fedora_messaging_severity": int32(20),
				"sent-at":                   time.Now().UTC().Format(time.RFC3339),
			},
			Body: body,
		}
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.opts.Exchange, p.opts.Topic, false, false, msg)
		if err != nil {
			return 0, fmt.Errorf("publish result %d: %w", res.ID, err)
		}
		sent = append(sent, pending{id: e.ID, confirm: c})
	}
	for _, s := range sent {
		ok, err := s.confirm.WaitContext(ctx)
		if err != nil {
			return 0, fmt.Errorf("wait for broker confirm: %w", err)
		}
		if !ok {
			return 0, fmt.Errorf("broker refused a message (nack)")
		}
		done = append(done, s.id)
	}
	if err := p.store.EventsSent(ctx, done); err != nil {
		return 0, err
	}
	return len(done), nil
}

// Drain waits until the outbox is empty or ctx ends, for a server that is
// stopping to send what its last requests queued instead of leaving it to
// its next start. It reports ctx's error when entries are left.
func (p *Publisher) Drain(ctx context.Context) error {
	for {
		left, err := p.store.PendingEvents(ctx, 1)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("outbox not empty: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
