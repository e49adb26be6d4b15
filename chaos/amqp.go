package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
)

// names are the run's AMQP names, all starting with the run's prefix.
type names struct{ prefix string }

func (n names) exchange() string    { return n.prefix + "-bus" }
func (n names) queue() string       { return n.prefix + "-trigger" }
func (n names) deadLetter() string  { return n.queue() + ".deadletter" }
func (n names) jobExchange() string { return n.prefix + "-jobs-exchange" }
func (n names) jobQueue() string    { return n.prefix + "-jobs" }

// publisher puts the stream's messages on the run's exchange, each
// confirmed; through a broker outage it reconnects and sends again (a
// message may then arrive twice: the trigger knows its id).
type publisher struct {
	url      string
	exchange string
	log      *slog.Logger
	conn     *amqp.Connection
	ch       *amqp.Channel
	returns  chan amqp.Return
	retries  int
}

func (p *publisher) connect() error {
	conn, err := amqp.Dial(p.url)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return err
	}
	p.conn, p.ch = conn, ch
	p.returns = ch.NotifyReturn(make(chan amqp.Return, 1))
	return nil
}

func (p *publisher) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.ch = nil, nil
	}
}

// publish sends one message until the broker confirms it, or ctx ends. It
// is mandatory: a message no queue takes (the trigger's queue not bound)
// comes back and is sent again.
func (p *publisher) publish(ctx context.Context, o outgoing) error {
	headers := amqp.Table{"sent-at": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range o.Headers {
		headers[k] = v
	}
	for {
		err := p.try(ctx, o, headers)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.retries++
		p.log.Debug("publish failed; again", "msg_id", o.ID, "err", err)
		p.close()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *publisher) try(ctx context.Context, o outgoing, headers amqp.Table) error {
	if p.ch == nil {
		if err := p.connect(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, o.Topic, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: o.ID, Headers: headers, Body: o.Body,
	})
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("nacked by the broker")
	}
	// A returned message's basic.return comes before its ack.
	select {
	case r := <-p.returns:
		return fmt.Errorf("returned by the broker: %s", r.ReplyText)
	default:
	}
	return nil
}

// withChannel runs fn on a fresh connection.
func withChannel(url string, fn func(*amqp.Channel) error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return fn(ch)
}

// ping connects and opens a channel.
func ping(url string) error {
	return withChannel(url, func(*amqp.Channel) error { return nil })
}

// queueDepth is how many messages wait ready in a queue; -1 when it does
// not exist.
func queueDepth(url, name string) (int, error) {
	n := -1
	err := withChannel(url, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		n = q.Messages
		return nil
	})
	return n, err
}

// deadLettered is one message of the dead-letter queue.
type deadLettered struct {
	ID     string
	Reason string
}

// drainDeadLetters takes every message off the dead-letter queue.
func drainDeadLetters(url, queue string) ([]deadLettered, error) {
	var out []deadLettered
	err := withChannel(url, func(ch *amqp.Channel) error {
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			reason, _ := d.Headers[bus.ReasonHeader].(string)
			out = append(out, deadLettered{ID: d.MessageId, Reason: reason})
		}
	})
	return out, err
}

// rabbitmqctl runs one rabbitmqctl command.
func rabbitmqctl(args ...string) (string, error) {
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// listWithPrefix lists the broker's queues or exchanges whose names start
// with prefix (what = "queues" or "exchanges").
func listWithPrefix(what, prefix string) ([]string, error) {
	out, err := rabbitmqctl("-q", "list_"+what, "name", "--no-table-headers")
	if err != nil {
		return nil, err
	}
	var found []string
	for _, line := range strings.Split(out, "\n") {
		if name := strings.TrimSpace(line); strings.HasPrefix(name, prefix) {
			found = append(found, name)
		}
	}
	return found, nil
}

// cleanupAMQP deletes every queue and exchange of the run, and says which
// are left.
func cleanupAMQP(url string, n names) (deleted []string, left []string, err error) {
	queues, err := listWithPrefix("queues", n.prefix)
	if err != nil {
		return nil, nil, err
	}
	exchanges, err := listWithPrefix("exchanges", n.prefix)
	if err != nil {
		return nil, nil, err
	}
	err = withChannel(url, func(ch *amqp.Channel) error {
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				return fmt.Errorf("delete queue %s: %w", q, err)
			}
			deleted = append(deleted, "queue "+q)
		}
		for _, x := range exchanges {
			if err := ch.ExchangeDelete(x, false, false); err != nil {
				return fmt.Errorf("delete exchange %s: %w", x, err)
			}
			deleted = append(deleted, "exchange "+x)
		}
		return nil
	})
	if err != nil {
		return deleted, nil, err
	}
	q2, err := listWithPrefix("queues", n.prefix)
	if err != nil {
		return deleted, nil, err
	}
	x2, err := listWithPrefix("exchanges", n.prefix)
	return deleted, append(q2, x2...), err
}

// restartBroker stops the RabbitMQ application and starts it again after
// down (the gentle way: the Erlang node stays up). It returns how long the
// broker did not serve, from stop_app's start to start_app's end.
func restartBroker(down time.Duration) (time.Duration, error) {
	began := time.Now()
	if _, err := rabbitmqctl("stop_app"); err != nil {
		// Whatever happened, try to leave it running.
		rabbitmqctl("start_app")
		return time.Since(began), err
	}
	time.Sleep(down)
	_, err := rabbitmqctl("start_app")
	return time.Since(began), err
}
