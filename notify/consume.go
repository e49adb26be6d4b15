package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/redact"
)

// errMalformed marks a message no retry can make readable: it is logged
// and acked.
var errMalformed = errors.New("malformed")

// consumer takes result events from the notifier's own durable queue,
// bound to the topic, and acks each only once handle has recorded what it
// owes (a store that fails ends the session: the broker gives the
// unacked messages to the next one).
type consumer struct {
	url, exchange, queue, topic string
	prefetch                    int
	log                         *slog.Logger
	handle                      func(ctx context.Context, body []byte) error

	connected   atomic.Bool
	connections atomic.Int64
	consumed    atomic.Int64
	malformed   atomic.Int64
}

func (c *consumer) run(ctx context.Context) {
	backoff := time.Second
	for {
		start := time.Now()
		err := c.session(ctx)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		c.log.Warn("notify: broker session ended; retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (c *consumer) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(c.url, amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact.URL(c.url), redact.URLError(err, c.url))
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	// amq.* exchanges exist on every broker and cannot be declared.
	if !strings.HasPrefix(c.exchange, "amq.") {
		if err := ch.ExchangeDeclare(c.exchange, "topic", true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", c.exchange, err)
		}
	}
	if _, err := ch.QueueDeclare(c.queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %s: %w", c.queue, err)
	}
	if err := ch.QueueBind(c.queue, c.topic, c.exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s to %s for %s: %w", c.queue, c.exchange, c.topic, err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.queue, err)
	}
	c.connected.Store(true)
	c.connections.Add(1)
	c.log.Info("notify: consuming result events", "broker", redact.URL(c.url), "queue", c.queue, "exchange", c.exchange, "topic", c.topic)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-closed:
			if e == nil {
				return errors.New("connection closed")
			}
			return e
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker ended the consumer")
			}
			err := c.handle(ctx, d.Body)
			switch {
			case errors.Is(err, errMalformed):
				c.malformed.Add(1)
				c.log.Warn("notify: result event set aside", "message_id", d.MessageId, "reason", err)
			case err != nil:
				// Not acked: redelivered to the next session.
				return err
			}
			c.consumed.Add(1)
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
	}
}
