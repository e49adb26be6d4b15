package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/redact"
)

// AMQPPublisher puts bus messages on a topic exchange in the Fedora
// Messaging wire format (routing key = topic, message-id = id, JSON body),
// each confirmed by the broker. It is what `taskotron replay messages` uses.
type AMQPPublisher struct {
	conn     *amqp.Connection
	ch       *amqp.Channel
	exchange string
}

// OpenAMQPPublisher connects; exchange "" means amq.topic.
func OpenAMQPPublisher(url, exchange string) (*AMQPPublisher, error) {
	if exchange == "" {
		exchange = "amq.topic"
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("amqp %s: %w", RedactURL(url), redact.URLError(err, url))
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp %s: %w", RedactURL(url), redact.URLError(err, url))
	}
	return &AMQPPublisher{conn: conn, ch: ch, exchange: exchange}, nil
}

// Publish sends messages and waits for every confirm.
func (p *AMQPPublisher) Publish(ctx context.Context, msgs ...contract.Message) error {
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		body, err := json.Marshal(m.Body)
		if err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		headers := amqp.Table{}
		for k, v := range m.Headers {
			headers[k] = amqpValue(v)
		}
		if _, ok := headers["sent-at"]; !ok {
			headers["sent-at"] = time.Now().UTC().Format(time.RFC3339)
		}
		// Headers over a frame make the broker close the connection (every
		// message in flight on it fails): say which message, and why.
		if frame := int(p.conn.Config.FrameSize); frame > 0 && headersSize(headers) > frame-4096 {
			return fmt.Errorf("message %s: its headers are %d bytes, more than the broker's frames (%d bytes) hold", Truncate(m.ID, MaxHeaderValue), headersSize(headers), frame)
		}
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, m.Topic, false, false, amqp.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent,
			MessageId: m.ID, Headers: headers, Body: body,
		})
		if err != nil {
			return fmt.Errorf("publishing message %s: %w", m.ID, err)
		}
		confirms = append(confirms, dc)
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("message %s: not confirmed by the broker", msgs[i].ID)
		}
	}
	return nil
}

// amqpValue makes JSON values fit AMQP tables (numbers as float64 or
// int64, nested maps as tables).
func amqpValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		t := amqp.Table{}
		for k, item := range x {
			t[k] = amqpValue(item)
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = amqpValue(item)
		}
		return out
	case int:
		return int64(x)
	}
	return v
}

// Close closes the connection.
func (p *AMQPPublisher) Close() error { return p.conn.Close() }
