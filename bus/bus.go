// Package bus holds the transports shared by the trigger and the workers:
// where bus messages come from (files, JSON lines, stdin; AMQP in amqp*.go)
// and where jobs wait for a runner (an in-process queue kept on disk; AMQP).
// It imports contract, config and atomicfile.
package bus

import (
	"context"
	"errors"

	"github.com/taskotron-go/taskotron/contract"
)

// ErrDrained is returned by a finite source when every message was read.
var ErrDrained = errors.New("no more messages")

// Delivery is one message handed to a consumer, which must either Ack it
// (its work is durably done) or Reject it (set aside with a reason, never
// retried). A delivery whose input could not be decoded has Err set and a
// zero Message; the consumer rejects it with Err as the reason.
type Delivery struct {
	Message contract.Message
	// Raw is the message as received, kept for dead-lettering.
	Raw []byte
	// Origin says where the message came from (file:line, queue name).
	Origin string
	Err    error

	ack    func() error
	reject func(reason string) error
}

// NewDelivery builds a delivery for a transport.
func NewDelivery(msg contract.Message, raw []byte, origin string, ack func() error, reject func(string) error) Delivery {
	return Delivery{Message: msg, Raw: raw, Origin: origin, ack: ack, reject: reject}
}

// Ack tells the transport the message is done with.
func (d Delivery) Ack() error {
	if d.ack == nil {
		return nil
	}
	return d.ack()
}

// Reject sets the message aside with the reason.
func (d Delivery) Reject(reason string) error {
	if d.reject == nil {
		return nil
	}
	return d.reject(reason)
}

// Source yields bus messages one at a time. Next blocks until a message is
// there, the context ends, or (for finite sources) ErrDrained.
type Source interface {
	Next(ctx context.Context) (Delivery, error)
}

// JobDelivery is one job handed to a worker.
type JobDelivery struct {
	Job contract.Job

	ack  func() error
	nack func() error
	lost <-chan struct{}
}

// NewJobDelivery builds a job delivery for a queue implementation.
func NewJobDelivery(job contract.Job, ack, nack func() error) JobDelivery {
	return JobDelivery{Job: job, ack: ack, nack: nack}
}

// WithLost is the delivery with a channel that closes when the queue has
// taken the job back without an answer (AMQP: the channel it came on
// closed, and the broker hands the job out again).
func (d JobDelivery) WithLost(lost <-chan struct{}) JobDelivery {
	d.lost = lost
	return d
}

// Lost closes when the delivery is void: the job is no longer this
// worker's to run, ack or hand back. Nil (never) for queues that cannot
// lose a delivery.
func (d JobDelivery) Lost() <-chan struct{} { return d.lost }

// Ack removes the job from the queue: its results are reported or spooled.
func (d JobDelivery) Ack() error { return d.ack() }

// Nack hands the job back to the queue for another worker.
func (d JobDelivery) Nack() error { return d.nack() }

// JobQueue is where the trigger puts jobs and workers take them. Publish
// returns only when every job is durably stored.
type JobQueue interface {
	Publish(ctx context.Context, jobs ...contract.Job) error
	Next(ctx context.Context) (JobDelivery, error)
}
