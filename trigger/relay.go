package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// Outcomes of one message in Relay.
const (
	OutcomeJobs     = "jobs"     // its jobs are queued (possibly none: all duplicates, or no rule matched)
	OutcomeIgnored  = "ignored"  // a topic or state the trigger skips
	OutcomeRejected = "rejected" // set aside with a reason (dead-letter queue)
	OutcomeFused    = "fused"    // merged into an earlier tag event's jobs
	OutcomeUnacked  = "unacked"  // stopped before its jobs were confirmed; the bus delivers it again
)

// MessageOutcome is what became of one message.
type MessageOutcome struct {
	MsgID      string         `json:"msg_id"`
	Topic      string         `json:"topic"`
	Origin     string         `json:"origin,omitempty"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	Jobs       []contract.Job `json:"jobs,omitempty"`
	Duplicates int            `json:"duplicates,omitempty"`
}

// Stats sums up a Relay run.
type Stats struct {
	Messages   int `json:"messages"`
	Jobs       int `json:"jobs"`
	Ignored    int `json:"ignored"`
	Rejected   int `json:"rejected"`
	Duplicates int `json:"duplicates"`
	// PerMessage holds the first MaxOutcomes outcomes, in completion order.
	PerMessage []MessageOutcome `json:"per_message"`
}

// MaxOutcomes caps Stats.PerMessage so a long-running relay stays small.
const MaxOutcomes = 10000

// RelayOptions tune RelayWith. Zero values are fine.
type RelayOptions struct {
	Log    *slog.Logger
	JobLog io.Writer
	// Workers is how many messages are in flight at once (default 8): jobs
	// of one message are confirmed while the next ones are handled.
	Workers int
	// BeforeAck, when set, runs after a message's jobs are confirmed and
	// committed and before the message is acked (fault tests stop here).
	BeforeAck func(msg contract.Message, jobs []contract.Job)
	// OnOutcome, when set, sees every outcome as it happens.
	OnOutcome func(MessageOutcome)
	// OnQueued, when set, hears of jobs once the queue has them and before
	// their messages are acked (the execution records' "queued").
	OnQueued func(jobs []contract.Job) error
	// OnPublish, when set, sees how each attempt to publish jobs ended: nil,
	// or the error of a queue that cannot take them now (an outage).
	OnPublish func(error)
}

// Relay moves messages from src to jobs on q until src is drained or ctx
// ends: Next → Handle → q.Publish (durable) → Commit → Ack. Ignored messages
// are acked, malformed ones rejected with the reason; a message is acked
// only after every job it produced is confirmed. It returns nil at the end
// of a finite source and when ctx ends (unfinished messages stay unacked).
func Relay(ctx context.Context, src bus.Source, t *Trigger, q bus.JobQueue, log *slog.Logger, jobLog io.Writer) (Stats, error) {
	return RelayWith(ctx, src, t, q, RelayOptions{Log: log, JobLog: jobLog})
}

// RelayWith is Relay with options.
func RelayWith(ctx context.Context, src bus.Source, t *Trigger, q bus.JobQueue, o RelayOptions) (Stats, error) {
	if o.Log == nil {
		o.Log = t.log
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	r := &relay{t: t, q: q, o: o, log: o.Log, inflight: map[string]chan struct{}{}}
	if o.JobLog != nil {
		r.jobLog = newGroupWriter(o.JobLog, o.Log)
	}
	if t.opts.FuseDelay > 0 {
		r.fuse = newFuser(r, t.opts.FuseDelay)
	}
	deliveries := make(chan bus.Delivery)
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				r.process(ctx, d)
			}
		}()
	}
	var fuseDone chan struct{}
	fuseCtx, stopFuse := context.WithCancel(context.Background())
	if r.fuse != nil {
		fuseDone = make(chan struct{})
		go func() { r.fuse.run(fuseCtx); close(fuseDone) }()
	}
	var srcErr error
	for {
		d, err := src.Next(ctx)
		if err != nil {
			if !errors.Is(err, bus.ErrDrained) && ctx.Err() == nil {
				srcErr = fmt.Errorf("reading messages: %w", err)
			}
			break
		}
		select {
		case deliveries <- d:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(deliveries)
	wg.Wait()
	if r.fuse != nil {
		stopFuse()
		<-fuseDone
		// Whatever is still held is published now, even at shutdown, so that
		// sources whose Ack cannot be undone (files) lose nothing.
		flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.fuse.flush(flushCtx, true)
		cancel()
	} else {
		stopFuse()
	}
	return r.stats(), srcErr
}

type relay struct {
	t    *Trigger
	q    bus.JobQueue
	o    RelayOptions
	log  *slog.Logger
	fuse *fuser

	mu       sync.Mutex
	st       Stats
	inflight map[string]chan struct{} // message ids being worked on
	jobLog   *groupWriter
}

// claim waits while another worker has the same message id (a redelivery
// that overtook the first delivery), so that the second one sees the first
// one's outcome in the dedup store instead of queueing its jobs again.
func (r *relay) claim(ctx context.Context, id string) (release func(), ok bool) {
	if id == "" {
		return func() {}, true
	}
	for {
		r.mu.Lock()
		wait, busy := r.inflight[id]
		if !busy {
			done := make(chan struct{})
			r.inflight[id] = done
			r.mu.Unlock()
			return func() {
				r.mu.Lock()
				delete(r.inflight, id)
				r.mu.Unlock()
				close(done)
			}, true
		}
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (r *relay) stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.PerMessage = append([]MessageOutcome(nil), r.st.PerMessage...)
	return st
}

func (r *relay) record(o MessageOutcome) {
	r.mu.Lock()
	r.st.Messages++
	switch o.Outcome {
	case OutcomeJobs:
		r.st.Jobs += len(o.Jobs)
	case OutcomeIgnored:
		r.st.Ignored++
	case OutcomeRejected:
		r.st.Rejected++
	}
	r.st.Duplicates += o.Duplicates
	if len(r.st.PerMessage) < MaxOutcomes {
		r.st.PerMessage = append(r.st.PerMessage, o)
	}
	r.mu.Unlock()
	if r.o.OnOutcome != nil {
		r.o.OnOutcome(o)
	}
}

func (r *relay) process(ctx context.Context, d bus.Delivery) {
	out := MessageOutcome{MsgID: d.Message.ID, Topic: d.Message.Topic, Origin: d.Origin}
	if d.Err != nil {
		r.reject(d, out, d.Err.Error())
		return
	}
	release, ok := r.claim(ctx, d.Message.ID)
	if !ok {
		out.Outcome, out.Reason = OutcomeUnacked, "stopped"
		r.record(out)
		return
	}
	defer release()
	h, err := r.handle(ctx, d.Message)
	switch {
	case errors.Is(err, ErrIgnored):
		out.Outcome, out.Reason = OutcomeIgnored, bus.Truncate(err.Error(), bus.MaxReason)
		r.log.Debug("message ignored", "msg_id", out.MsgID, "origin", d.Origin, "why", out.Reason)
		if err := d.Ack(); err != nil {
			r.log.Warn("ack failed; the message will come again", "msg_id", out.MsgID, "err", err)
		}
		r.record(out)
		return
	case errors.Is(err, ErrMalformed):
		r.reject(d, out, err.Error())
		return
	case err != nil:
		if ctx.Err() != nil {
			out.Outcome, out.Reason = OutcomeUnacked, bus.Truncate(err.Error(), bus.MaxReason)
			r.record(out)
			return
		}
		r.reject(d, out, "could not be handled: "+err.Error())
		return
	}
	out.Duplicates = h.duplicates
	if h.seen == "done" {
		out.Reason = "already handled (message id seen)"
	}
	if r.fuse != nil && fusable(h.jobs) {
		r.fuse.add(ctx, d, h, out)
		return
	}
	r.finish(ctx, []bus.Delivery{d}, []MessageOutcome{out}, h.jobs, [][]contract.Job{h.jobs})
}

// handle retries transient failures (dedup store down, discover clone
// failing) with backoff for up to TransientPatience before giving up on a
// message, so that an outage of a few minutes delays messages instead of
// setting them aside.
func (r *relay) handle(ctx context.Context, msg contract.Message) (handled, error) {
	delay := 500 * time.Millisecond
	deadline := time.Now().Add(TransientPatience)
	for attempt := 1; ; attempt++ {
		h, err := r.t.handle(ctx, msg)
		if err == nil || errors.Is(err, ErrIgnored) || errors.Is(err, ErrMalformed) || time.Now().After(deadline) {
			return h, err
		}
		r.log.Warn("handling failed, retrying", "msg_id", msg.ID, "attempt", attempt, "retry_in", delay, "err", bus.Truncate(err.Error(), bus.MaxReason))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return h, err
		}
		if delay = 2 * delay; delay > 30*time.Second {
			delay = 30 * time.Second
		}
	}
}

// TransientPatience is how long a message whose handling keeps failing for
// reasons other than its content is retried before it is set aside.
var TransientPatience = 5 * time.Minute

// reject sets a message aside with the reason, cut to bus.MaxReason: the
// reason may quote the message, and it goes into a header and a log line.
func (r *relay) reject(d bus.Delivery, out MessageOutcome, reason string) {
	reason = bus.Truncate(reason, bus.MaxReason)
	r.log.Warn("message set aside", "msg_id", out.MsgID, "origin", d.Origin, "reason", reason)
	out.Outcome, out.Reason = OutcomeRejected, reason
	if err := d.Reject(reason); err != nil {
		r.log.Error("could not set message aside; the message will come again", "msg_id", out.MsgID, "err", err)
		out.Outcome = OutcomeUnacked
	}
	r.record(out)
}

// finish publishes jobs for one or more messages (one for a plain message,
// several for a fused group), then commits, logs and acks each message.
// Jobs the queue refuses for what they hold set their messages aside: no
// retry could queue them, and held they would take a prefetch slot forever.
func (r *relay) finish(ctx context.Context, ds []bus.Delivery, outs []MessageOutcome, jobs []contract.Job, perMsg [][]contract.Job) {
	if len(jobs) > 0 {
		if err := r.publish(ctx, jobs); err != nil {
			for i, out := range outs {
				if errors.Is(err, bus.ErrRefused) {
					r.reject(ds[i], out, err.Error())
					continue
				}
				out.Outcome, out.Reason = OutcomeUnacked, bus.Truncate(err.Error(), bus.MaxReason)
				r.record(out)
			}
			return
		}
		r.writeJobLog(jobs)
		if r.o.OnQueued != nil {
			if err := r.o.OnQueued(jobs); err != nil {
				r.log.Error("execution records of queued jobs not kept", "jobs", len(jobs), "err", err)
			}
		}
	}
	for i, d := range ds {
		out := outs[i]
		if err := r.t.Commit(ctx, d.Message.ID); err != nil {
			// Not fatal: a redelivery finds the message pending and queues
			// the same jobs (same uuids) again.
			r.log.Error("dedup commit failed", "msg_id", out.MsgID, "err", err)
		}
		if r.o.BeforeAck != nil {
			r.o.BeforeAck(d.Message, perMsg[i])
		}
		if err := d.Ack(); err != nil {
			r.log.Warn("ack failed; the message will come again and be recognised", "msg_id", out.MsgID, "err", err)
		}
		if out.Outcome == "" {
			out.Outcome = OutcomeJobs
		}
		out.Jobs = perMsg[i]
		r.record(out)
		for _, j := range perMsg[i] {
			r.log.Info("job queued", "msg_id", out.MsgID, "item", bus.Truncate(j.Item, bus.MaxHeaderValue), "item_type", j.ItemType,
				"task", bus.Truncate(j.TaskName, bus.MaxHeaderValue), "arch", j.Arch, "uuid", j.UUID)
		}
	}
}

// publish retries until the queue confirms or ctx ends: a broker outage
// delays messages, it does not drop them. Jobs refused for what they hold
// (bus.ErrRefused) are not tried again.
func (r *relay) publish(ctx context.Context, jobs []contract.Job) error {
	delay := 200 * time.Millisecond
	for {
		err := r.q.Publish(ctx, jobs...)
		refused := errors.Is(err, bus.ErrRefused)
		if f := r.o.OnPublish; f != nil && ctx.Err() == nil {
			if refused {
				f(nil) // the queue answered: it is there
			} else {
				f(err)
			}
		}
		if err == nil || refused {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publishing jobs: %w", err)
		}
		r.log.Warn("publishing jobs failed, retrying", "jobs", len(jobs), "in", delay, "err", bus.Truncate(err.Error(), bus.MaxReason))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("publishing jobs: %w", err)
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

func (r *relay) writeJobLog(jobs []contract.Job) {
	if r.jobLog == nil {
		return
	}
	// The lines of one message stay together; messages finishing together
	// share a write.
	var buf []byte
	for _, j := range jobs {
		line, err := j.MarshalJSON()
		if err != nil {
			r.log.Error("job log: cannot encode job", "uuid", j.UUID, "err", err)
			continue
		}
		buf = append(append(buf, line...), '\n')
	}
	r.jobLog.Write(buf)
}
