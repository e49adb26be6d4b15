package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/redact"
)

// AMQPJobQueueConfig configures an AMQPJobQueue.
type AMQPJobQueueConfig struct {
	URL string
	// Exchange is the direct exchange jobs are routed through by arch
	// (default "taskotron.jobs").
	Exchange string
	// Queue prefixes the per-arch queues: <Queue>.<arch>.
	Queue string
	// Arches are the queues Next consumes from (a worker's arches). Publish
	// declares the queue of any arch it sees, so no job is unroutable.
	Arches []string
	// HostArch is the arch of the machine the worker runs on (default
	// HostArch()). Next also takes the match_host_arch jobs of that arch,
	// when it is one of Arches.
	HostArch string
	// Prefetch bounds the jobs a worker holds unacked (default 1: a job
	// waits in the queue, where another worker can take it).
	Prefetch int
	// Running is how many of them the worker runs at once (default
	// Prefetch). The broker hands the worker only that many, over all its
	// queues, plus one per HoldExtra: jobs are not taken ahead, where an
	// idle worker could not have them, and Prefetch is the ceiling.
	Running int
	// MaxPriority is the queues' x-max-priority (default 9).
	MaxPriority int
	// MaxJobBytes is the largest job Publish sends (its JSON; default
	// DefaultMaxJobBytes): a bigger one is refused (ErrRefused) before any
	// job of the call is sent. The broker's own limit (max_message_size:
	// 128 MiB on RabbitMQ 3, 16 MiB on 4) is the last word; a refusal from
	// it is ErrRefused too.
	MaxJobBytes int
	Log         *slog.Logger
}

// DefaultMaxJobBytes: a job is a few hundred bytes; one of a megabyte has
// something from a message in it that no task can use.
const DefaultMaxJobBytes = 1 << 20

// ErrRefused is wrapped by a Publish error when jobs cannot be queued for
// what they hold (too big, or refused by the broker for their content):
// publishing them again cannot succeed, and the message they came from is
// to be set aside. Any other Publish error is an outage, to be waited out.
var ErrRefused = errors.New("job queue refused")

// AMQPJobQueue is the production job queue: durable priority queues, one per
// arch, persistent messages and publisher confirms. It reconnects on the
// next call after a lost connection.
//
// Routing: a job goes to <queue>.<arch> (routing key <arch>). A worker
// takes from the queues of the arches it is given, which may include arches
// its machine can merely run (an x86_64 host taking i686 jobs). A job whose
// rule says match_host_arch (and whose arch is not noarch) goes to
// <queue>.<arch>.host instead, which a worker takes from only when <arch>
// is both one of its arches and its machine's own (HostArch): so an i686
// match_host_arch job waits for an i686 machine even when x86_64 workers
// take i686 jobs.
type AMQPJobQueue struct {
	cfg AMQPJobQueueConfig
	log *slog.Logger

	mu       sync.Mutex
	conn     *amqp.Connection
	pub      *amqp.Channel
	pubClose *closeWatch // why pub was closed
	declared map[string]bool
	consume  <-chan amqp.Delivery
	cons     *amqp.Channel
	tags     []string      // the consumers on cons
	stopCons chan struct{} // closed when the consumer is dropped
	stopped  bool          // StopConsuming was called
	extra    int           // HoldExtra's count: jobs held that do not run

	// consLost closes when the consumer's channel does: its deliveries are
	// void then, and the broker hands their jobs out again.
	consLost <-chan struct{}
}

// OpenAMQPJobQueue connects and declares the exchange and the queues of cfg.Arches.
func OpenAMQPJobQueue(ctx context.Context, cfg AMQPJobQueueConfig) (*AMQPJobQueue, error) {
	if cfg.Exchange == "" {
		cfg.Exchange = "taskotron.jobs"
	}
	if cfg.Queue == "" {
		return nil, errors.New("amqp job queue: no queue name")
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 1
	}
	if cfg.Running <= 0 || cfg.Running > cfg.Prefetch {
		cfg.Running = cfg.Prefetch
	}
	if cfg.MaxPriority <= 0 {
		cfg.MaxPriority = 9
	}
	if cfg.MaxJobBytes <= 0 {
		cfg.MaxJobBytes = DefaultMaxJobBytes
	}
	if cfg.HostArch == "" {
		cfg.HostArch = HostArch()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	q := &AMQPJobQueue{cfg: cfg, log: cfg.Log}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.connectLocked(); err != nil {
		return nil, err
	}
	for _, k := range q.consumed() {
		if err := q.declareLocked(k); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// QueueName is the queue holding jobs for arch.
func (q *AMQPJobQueue) QueueName(arch string) string { return q.cfg.Queue + "." + arch }

// hostSuffix marks the routing keys and queues of match_host_arch jobs.
const hostSuffix = ".host"

// routingKey is where a job goes: its arch, or its arch's host-only queue
// when it must run on a machine of that arch.
func routingKey(j contract.Job) string {
	if j.MatchHostArch && j.Arch != "noarch" {
		return j.Arch + hostSuffix
	}
	return j.Arch
}

// HostArch is this machine's arch as Fedora names it (x86_64, aarch64, …).
func HostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "arm":
		return "armhfp"
	}
	return runtime.GOARCH // ppc64le, s390x, riscv64 are the same in both
}

// consumed are the routing keys Next takes jobs from.
func (q *AMQPJobQueue) consumed() []string {
	keys := append([]string{}, q.cfg.Arches...)
	if slices.Contains(q.cfg.Arches, q.cfg.HostArch) && q.cfg.HostArch != "noarch" {
		keys = append(keys, q.cfg.HostArch+hostSuffix)
	}
	return keys
}

func (q *AMQPJobQueue) connectLocked() error {
	if q.conn != nil && !q.conn.IsClosed() && q.pub != nil && !q.pub.IsClosed() {
		return nil
	}
	q.dropLocked()
	q.declared = map[string]bool{}
	conn, err := amqp.Dial(q.cfg.URL)
	if err != nil {
		return fmt.Errorf("amqp %s: %w", RedactURL(q.cfg.URL), redact.URLError(err, q.cfg.URL))
	}
	pub, err := conn.Channel()
	if err == nil {
		err = pub.Confirm(false)
	}
	if err == nil {
		err = pub.ExchangeDeclare(q.cfg.Exchange, "direct", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("amqp %s: job exchange %s: %w", RedactURL(q.cfg.URL), q.cfg.Exchange, redact.URLError(err, q.cfg.URL))
	}
	q.conn, q.pub, q.pubClose = conn, pub, watchClose(pub)
	return nil
}

// declareLocked declares the queue for a routing key (an arch, or an arch's
// host-only key) and binds it.
func (q *AMQPJobQueue) declareLocked(key string) error {
	if q.declared[key] {
		return nil
	}
	name := q.QueueName(key)
	args := amqp.Table{"x-max-priority": int32(q.cfg.MaxPriority)}
	if _, err := q.pub.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("job queue %s: %w", name, err)
	}
	if err := q.pub.QueueBind(name, key, q.cfg.Exchange, false, nil); err != nil {
		return fmt.Errorf("job queue %s: bind: %w", name, err)
	}
	q.declared[key] = true
	return nil
}

// Publish sends the jobs as persistent messages routed by arch, and returns
// once the broker has confirmed every one of them. An error wrapping
// ErrRefused says the jobs cannot be queued for what they hold; any other
// error is an outage (the next call reconnects).
func (q *AMQPJobQueue) Publish(ctx context.Context, jobs ...contract.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	bodies := make([][]byte, len(jobs))
	for i, j := range jobs {
		if j.Arch == "" {
			return fmt.Errorf("job %s (%s on %s) has no arch", j.UUID, Truncate(j.TaskName, 64), Truncate(j.Item, 64))
		}
		b, err := j.MarshalJSON() // json.Marshal would check and compact it again
		if err != nil {
			return fmt.Errorf("job %s: %w", j.UUID, err)
		}
		if len(b) > q.cfg.MaxJobBytes {
			return fmt.Errorf("%w job %s (%s on %s): it is %d bytes, more than the %d a job may be",
				ErrRefused, j.UUID, Truncate(j.TaskName, 64), Truncate(j.Item, 64), len(b), q.cfg.MaxJobBytes)
		}
		bodies[i] = b
	}
	q.mu.Lock()
	if err := q.connectLocked(); err != nil {
		q.mu.Unlock()
		return err
	}
	for _, j := range jobs {
		if err := q.declareLocked(routingKey(j)); err != nil {
			q.dropLocked()
			q.mu.Unlock()
			return err
		}
	}
	pub, closed := q.pub, q.pubClose
	q.mu.Unlock()

	err := q.send(ctx, pub, jobs, bodies)
	if err == nil {
		amqpMetrics.Add("jobs_published", int64(len(jobs)))
		return nil
	}
	if ctx.Err() != nil {
		return err // the channel is fine; confirms still due are dropped with it later
	}
	refusal := closed.reason(2 * time.Second)
	q.drop(pub)
	if refusesContent(refusal) {
		// The channel carries every caller's jobs: whose the broker refused
		// only a channel carrying these jobs alone can tell.
		return q.publishAlone(ctx, jobs, bodies, err)
	}
	return err
}

// publishing is the AMQP message of a job. The headers, for routing tools
// and management pages, hold the start of long values; the body has them whole.
func (q *AMQPJobQueue) publishing(j contract.Job, body []byte) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Priority:     priority(j.Priority, q.cfg.MaxPriority),
		MessageId:    j.UUID,
		Timestamp:    time.Now().UTC(),
		Type:         "taskotron.job",
		Headers: amqp.Table{
			"taskname":  Truncate(j.TaskName, MaxHeaderValue),
			"item":      Truncate(j.Item, MaxHeaderValue),
			"item_type": Truncate(j.ItemType, MaxHeaderValue),
		},
		Body: body,
	}
}

// send publishes on pub and waits for every confirm.
func (q *AMQPJobQueue) send(ctx context.Context, pub *amqp.Channel, jobs []contract.Job, bodies [][]byte) error {
	confirms := make([]*amqp.DeferredConfirmation, len(jobs))
	for i, j := range jobs {
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, q.cfg.Exchange, routingKey(j), false, false, q.publishing(j, bodies[i]))
		if err != nil {
			return fmt.Errorf("publishing job %s: %w", j.UUID, err)
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("job %s: waiting for the broker's confirm: %w", jobs[i].UUID, err)
		}
		if !ok {
			return fmt.Errorf("job %s: the broker did not confirm it (nack or connection lost)", jobs[i].UUID)
		}
	}
	return nil
}

// publishAlone publishes the jobs one by one on a connection of their own,
// after the broker closed the shared channel refusing some content: a
// refusal here is theirs (ErrRefused, naming the job and the broker's
// reason); a success or an outage is what it says. Jobs before a refused
// one stay queued.
func (q *AMQPJobQueue) publishAlone(ctx context.Context, jobs []contract.Job, bodies [][]byte, cause error) error {
	conn, err := amqp.Dial(q.cfg.URL)
	if err != nil {
		return fmt.Errorf("%w (then connecting to publish alone: %v)", cause, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		return fmt.Errorf("%w (then opening a channel to publish alone: %v)", cause, err)
	}
	closed := watchClose(ch)
	for i, j := range jobs {
		err := q.send(ctx, ch, jobs[i:i+1], bodies[i:i+1])
		if err == nil {
			amqpMetrics.Add("jobs_published", 1)
			continue
		}
		if e := closed.reason(2 * time.Second); refusesContent(e) {
			amqpMetrics.Add("jobs_refused", 1)
			return fmt.Errorf("%w job %s (%s on %s, %d bytes): the broker closed the channel: %s (%d)",
				ErrRefused, j.UUID, Truncate(j.TaskName, 64), Truncate(j.Item, 64), len(bodies[i]), Truncate(e.Reason, MaxHeaderValue), e.Code)
		}
		return err
	}
	return nil
}

func priority(p, maxP int) uint8 {
	if p < 0 {
		return 0
	}
	if p > maxP {
		return uint8(maxP)
	}
	return uint8(p)
}

// drop forgets a broken channel so the next call reconnects.
func (q *AMQPJobQueue) drop(ch *amqp.Channel) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pub == ch {
		q.dropLocked()
	}
}

func (q *AMQPJobQueue) dropLocked() {
	if q.conn != nil {
		q.conn.Close()
	}
	if q.stopCons != nil {
		close(q.stopCons)
	}
	q.conn, q.pub, q.cons, q.consume, q.stopCons, q.tags = nil, nil, nil, nil, nil, nil
}

// Next takes the next job from the queues of cfg.Arches, highest priority
// first. The attempt count goes up by one per delivery. A job the broker
// redelivers was taken by a worker that never settled it (it died, or lost
// its channel): that attempt is counted where it survives, in the job
// published again, and the copy comes as the next attempt. So a job whose
// workers keep dying runs out of attempts instead of running for ever, as a
// quorum queue's delivery count would have it.
func (q *AMQPJobQueue) Next(ctx context.Context) (JobDelivery, error) {
	if len(q.cfg.Arches) == 0 {
		return JobDelivery{}, errors.New("amqp job queue: no arches to consume from")
	}
	for {
		msgs, lost, err := q.consumer()
		if err != nil {
			return JobDelivery{}, err
		}
		select {
		case <-ctx.Done():
			return JobDelivery{}, ctx.Err()
		case d, ok := <-msgs:
			if !ok {
				q.mu.Lock()
				if q.consume == msgs {
					q.dropLocked()
				}
				q.mu.Unlock()
				select {
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
					return JobDelivery{}, ctx.Err()
				}
				continue
			}
			var job contract.Job
			if err := json.Unmarshal(d.Body, &job); err != nil {
				// Not a job: keep it out of the way, with the reason logged.
				q.log.Error("not a job, dropped from the queue", "queue", d.RoutingKey, "message_id", d.MessageId, "err", err)
				_ = d.Reject(false)
				continue
			}
			if d.Redelivered {
				job.Attempt++
				if err := q.Publish(context.WithoutCancel(ctx), job); err != nil {
					_ = d.Nack(false, true)
					return JobDelivery{}, fmt.Errorf("amqp job queue: counting the lost attempt of job %s: %w", job.UUID, err)
				}
				if err := d.Ack(false); err != nil {
					// The copy is queued; a duplicate left here is reported once.
					q.log.Warn("ack of a redelivered job after queueing its next attempt", "uuid", job.UUID, "err", err)
				}
				q.log.Warn("job redelivered: its last attempt ended without an answer (its worker died, or lost its connection); counted, and queued again",
					"uuid", job.UUID, "task", job.TaskName, "attempts", job.Attempt)
				continue
			}
			job.Attempt++
			return NewJobDelivery(job,
				func() error { return d.Ack(false) },
				func() error { return q.handBack(ctx, d, job, lost) }).WithLost(lost), nil
		}
	}
}

// handBack requeues a job handed out by Next, unless its delivery is lost
// already: the broker has the job back and hands it out again, and a
// copy published now would run as well.
func (q *AMQPJobQueue) handBack(ctx context.Context, d amqp.Delivery, job contract.Job, lost <-chan struct{}) error {
	select {
	case <-lost:
		q.log.Info("job not handed back: its delivery is lost, the broker hands it out again", "uuid", job.UUID)
		return nil
	default:
	}
	return q.requeue(ctx, d, job)
}

// requeue publishes the job again with its attempt count, then acks the
// delivery, so the count survives.
func (q *AMQPJobQueue) requeue(ctx context.Context, d amqp.Delivery, job contract.Job) error {
	if err := q.Publish(context.WithoutCancel(ctx), job); err != nil {
		return d.Nack(false, true)
	}
	return d.Ack(false)
}

func (q *AMQPJobQueue) consumer() (<-chan amqp.Delivery, <-chan struct{}, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.consume != nil {
		return q.consume, q.consLost, nil
	}
	if q.stopped {
		return nil, nil, errors.New("amqp job queue: stopped taking jobs")
	}
	if err := q.connectLocked(); err != nil {
		return nil, nil, err
	}
	ch, err := q.conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("amqp job queue: %w", err)
	}
	lost := make(chan struct{})
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		<-closed
		close(lost)
	}()
	// Each consumer may hold Prefetch; the channel, all queues together,
	// only what runs (RabbitMQ enforces both).
	if err := ch.Qos(q.cfg.Prefetch, 0, false); err != nil {
		return nil, nil, fmt.Errorf("amqp job queue: prefetch: %w", err)
	}
	if err := ch.Qos(q.channelLimitLocked(), 0, true); err != nil {
		return nil, nil, fmt.Errorf("amqp job queue: prefetch: %w", err)
	}
	merged := make(chan amqp.Delivery)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var tags []string
	for _, k := range q.consumed() {
		if err := q.declareLocked(k); err != nil {
			return nil, nil, err
		}
		// Named, so that StopConsuming can cancel it.
		tag := "taskotron-jobs-" + k
		msgs, err := ch.Consume(q.QueueName(k), tag, false, false, false, false, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("amqp job queue: consume %s: %w", q.QueueName(k), err)
		}
		tags = append(tags, tag)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range msgs {
				select {
				case merged <- d:
				case <-stop: // dropped: the delivery comes again from the broker
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(merged) }()
	q.cons, q.consume, q.stopCons, q.tags, q.consLost = ch, merged, stop, tags, lost
	return merged, lost, nil
}

// HoldExtra tells the queue that the worker holds delta more jobs (or
// fewer, when negative) that do not run: a job waiting for its retry keeps
// its delivery, and the broker may hand the worker one more job to run in
// the meantime. The count survives a reconnection.
func (q *AMQPJobQueue) HoldExtra(delta int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.extra = max(0, q.extra+delta)
	if q.cons == nil {
		return nil // applied when the consumer starts
	}
	if err := q.cons.Qos(q.channelLimitLocked(), 0, true); err != nil {
		return fmt.Errorf("amqp job queue: prefetch: %w", err)
	}
	return nil
}

func (q *AMQPJobQueue) channelLimitLocked() int {
	return min(q.cfg.Running+q.extra, q.cfg.Prefetch)
}

// StopConsuming is for a worker that stops taking jobs: the broker pushes
// no more here, and the jobs it pushed ahead (up to the prefetch) that Next
// did not hand out go back at once, their attempt count unchanged. Left to
// Close they would stay hidden from other workers until then, and come
// back redelivered, counted as attempted although they never ran. So would
// a job handed back now, which the broker could push straight back here.
// Jobs handed out keep their deliveries: acking and handing back work as
// before. Next takes no more jobs.
func (q *AMQPJobQueue) StopConsuming() error {
	q.mu.Lock()
	q.stopped = true
	ch, tags, merged := q.cons, q.tags, q.consume
	q.cons, q.tags, q.consume = nil, nil, nil
	q.mu.Unlock()
	if ch == nil {
		return nil
	}
	for _, tag := range tags {
		if err := ch.Cancel(tag, false); err != nil {
			// The channel is gone, and with it what it held: the broker
			// has those jobs back already.
			return fmt.Errorf("amqp job queue: stopping consumer %s: %w", tag, err)
		}
	}
	// Once cancelled, a consumer's channel closes after what it buffered.
	handed := 0
	for d := range merged {
		var job contract.Job
		if err := json.Unmarshal(d.Body, &job); err != nil {
			_ = d.Nack(false, true) // not a job: Next, on some worker, sets it aside
			continue
		}
		if err := q.requeue(context.Background(), d, job); err != nil {
			q.log.Error("handing back a job taken ahead failed; the broker redelivers it", "uuid", job.UUID, "err", err)
			continue
		}
		handed++
	}
	if handed > 0 {
		q.log.Info("handed back jobs taken ahead of time", "count", handed)
	}
	return nil
}

// Close closes the connection; unacked jobs go back to their queues (those
// Next did not hand out, first through StopConsuming).
func (q *AMQPJobQueue) Close() error {
	if err := q.StopConsuming(); err != nil {
		q.log.Warn("closing the job queue", "err", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.conn == nil {
		return nil
	}
	err := q.conn.Close()
	if q.stopCons != nil {
		close(q.stopCons)
	}
	q.conn, q.pub, q.cons, q.consume, q.stopCons, q.tags = nil, nil, nil, nil, nil, nil
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
