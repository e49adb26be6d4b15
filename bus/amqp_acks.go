package bus

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackHold is how long a finished delivery may wait behind an unfinished one
// with a lower tag before it is acked on its own. The relay's workers finish
// messages out of order by a few milliseconds (scheduling, batches of
// publish confirms), so most finishes are still covered by the next
// multiple ack; yet a message held for minutes (the fuse delay, a publish
// retried through a broker outage) keeps only itself in the prefetch
// window, not every message that came after it. Longer would cost window:
// at 5000 messages/s, 5 ms of waiting is 25 unacked slots at most.
const ackHold = 5 * time.Millisecond

// ackTracker follows the delivery tags of one AMQP channel and says which
// ack frames to send: one multiple ack for the finished tags below the
// lowest unfinished one, and single acks for finished tags that waited
// ackHold behind an unfinished one. It is plain data: the caller locks.
//
// Every delivered tag is unfinished, finished (no ack sent yet) or acked.
// Only the first two are kept: both are unacked on the broker, so the
// prefetch count bounds them, however long one message is held.
type ackTracker struct {
	hold time.Duration
	top  uint64 // highest tag delivered
	// gap is the lowest tag skipped by deliver (0: none). The broker numbers
	// a channel's deliveries 1, 2, 3…; a skipped tag was never seen here,
	// so no multiple ack may reach it.
	gap        uint64
	unfinished []uint64      // ascending
	finished   []finishedTag // ascending by tag
}

type finishedTag struct {
	tag uint64
	at  time.Time
}

// ackFrames is what to send, in this order.
type ackFrames struct {
	upTo    uint64 // basic.ack multiple=true up to this tag; 0: none
	singles []uint64
}

func (f ackFrames) count() int {
	n := len(f.singles)
	if f.upTo != 0 {
		n++
	}
	return n
}

func newAckTracker(hold time.Duration) *ackTracker { return &ackTracker{hold: hold} }

// deliver records a tag handed out by the broker; tags come in ascending order.
func (t *ackTracker) deliver(tag uint64) {
	if tag <= t.top {
		return // not from this channel's sequence: never acked, so redelivered
	}
	if tag > t.top+1 && t.gap == 0 {
		t.gap = t.top + 1
	}
	t.top = tag
	t.unfinished = append(t.unfinished, tag)
}

// finish records that the work of a delivered tag is done. It reports false
// for a tag that is not waiting (finished already, or never delivered).
func (t *ackTracker) finish(tag uint64, now time.Time) bool {
	i, ok := slices.BinarySearch(t.unfinished, tag)
	if !ok {
		return false
	}
	t.unfinished = slices.Delete(t.unfinished, i, i+1)
	j, _ := slices.BinarySearchFunc(t.finished, tag, byTag)
	t.finished = slices.Insert(t.finished, j, finishedTag{tag, now})
	return true
}

func byTag(f finishedTag, tag uint64) int { return cmp.Compare(f.tag, tag) }

// take returns the frames that are due at now and forgets their tags, and
// when the next single ack falls due (zero: none waits). With all, every
// finished tag is due (a clean shutdown).
//
// The multiple ack names the highest finished tag below the limit: that tag
// is still unacked on the broker, as RabbitMQ requires (a multiple ack
// whose own tag was acked already closes the channel with "unknown delivery
// tag"); tags below it that were acked singly are simply skipped.
func (t *ackTracker) take(now time.Time, all bool) (ackFrames, time.Time) {
	var out ackFrames
	n, _ := slices.BinarySearchFunc(t.finished, t.limit(), byTag)
	if n > 0 {
		out.upTo = t.finished[n-1].tag
		t.finished = slices.Delete(t.finished, 0, n)
	}
	// What is left waits behind an unfinished tag.
	var next time.Time
	kept := t.finished[:0]
	for _, f := range t.finished {
		due := f.at.Add(t.hold)
		if all || !now.Before(due) {
			out.singles = append(out.singles, f.tag)
			continue
		}
		kept = append(kept, f)
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	t.finished = kept
	return out, next
}

// ready counts the finished tags the next multiple ack covers.
func (t *ackTracker) ready() int {
	n, _ := slices.BinarySearchFunc(t.finished, t.limit(), byTag)
	return n
}

// limit is the lowest tag a multiple ack must not reach.
func (t *ackTracker) limit() uint64 {
	l := t.top + 1
	if len(t.unfinished) > 0 {
		l = t.unfinished[0]
	}
	if t.gap != 0 && t.gap < l {
		l = t.gap
	}
	return l
}

// errAckGone is returned for a delivery whose connection is gone: its ack
// cannot be sent, and the broker hands the message out again.
var errAckGone = errors.New("amqp: the connection of this delivery is gone; the broker will deliver the message again")

// sourceAcker sends the acks of one connection's consuming channel from one
// goroutine, so that Ack returns at once and finishes that come close
// together share a frame.
type sourceAcker struct {
	ch      *amqp.Channel
	log     *slog.Logger
	frames  *atomic.Int64 // the source's count of frames sent
	flushAt int           // this many acks ready are sent without lingering

	mu      sync.Mutex
	t       *ackTracker
	armed   bool // the goroutine was woken since its last take
	gone    bool // no more finishes: stopped, or the channel failed
	stopped bool // close was called
	flush   bool // on stop, send what is pending

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// ackLinger is how long the first ack after a quiet spell waits for others
// to share its frame. Messages come from the broker in bursts and the relay
// finishes them microseconds apart, yet one goroutine sending each ack as
// it comes keeps up and sends a frame per message: waiting a millisecond
// turns a burst into one frame, and costs a millisecond of prefetch window
// only (the window is flushed early when half of it is ready).
const ackLinger = time.Millisecond

func startSourceAcker(ch *amqp.Channel, prefetch int, log *slog.Logger, frames *atomic.Int64) *sourceAcker {
	a := &sourceAcker{ch: ch, log: log, frames: frames, flushAt: max(1, prefetch/2), t: newAckTracker(ackHold),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// deliver records a delivery before it is handed out.
func (a *sourceAcker) deliver(tag uint64) {
	a.mu.Lock()
	if !a.stopped {
		a.t.deliver(tag)
	}
	a.mu.Unlock()
}

// finish records a finished delivery; its ack is sent shortly after. Acking
// twice is harmless.
func (a *sourceAcker) finish(tag uint64) error {
	a.mu.Lock()
	if a.gone || a.ch.IsClosed() {
		a.gone = true
		a.mu.Unlock()
		return errAckGone
	}
	ok := a.t.finish(tag, time.Now())
	// The goroutine needs a word for the first finish after its last take
	// (it starts lingering) and when the window is half full; not for each.
	signal := ok && (!a.armed || a.t.ready() >= a.flushAt)
	a.armed = a.armed || ok
	a.mu.Unlock()
	if ok {
		amqpMetrics.Add("source_acked", 1)
	}
	if signal {
		select {
		case a.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	return nil
}

// usable reports whether finishes are still taken.
func (a *sourceAcker) usable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.gone && !a.ch.IsClosed()
}

// close stops taking finishes and ends the goroutine; with flush, every
// finished delivery is acked first (a clean shutdown), without, the tags
// are dropped (the connection is lost; they mean nothing on the next one).
// Later calls only wait.
func (a *sourceAcker) close(flush bool) {
	a.mu.Lock()
	if !a.stopped {
		a.stopped, a.gone, a.flush = true, true, flush
		close(a.stop)
	}
	a.mu.Unlock()
	<-a.done
}

func (a *sourceAcker) run() {
	defer close(a.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due time.Time // when the timer fires; zero: stopped
	wakeAt := func(at time.Time) {
		if !at.IsZero() && (due.IsZero() || at.Before(due)) {
			due = at
			timer.Reset(time.Until(at))
		}
	}
	for {
		select {
		case <-a.wake:
			a.mu.Lock()
			full := a.t.ready() >= a.flushAt
			a.mu.Unlock()
			if !full {
				wakeAt(time.Now().Add(ackLinger))
				continue
			}
		case <-timer.C:
			due = time.Time{}
		case <-a.stop:
			a.mu.Lock()
			flush, t := a.flush, a.t
			a.t = nil
			a.mu.Unlock()
			if flush && !a.ch.IsClosed() {
				frames, _ := t.take(time.Now(), true)
				a.send(frames)
			}
			return
		}
		a.mu.Lock()
		frames, next := a.t.take(time.Now(), false)
		a.armed = false
		a.mu.Unlock()
		a.send(frames)
		wakeAt(next)
	}
}

// send writes the frames; after a failure the channel is gone and the
// unacked messages come again, so the rest is not tried.
func (a *sourceAcker) send(f ackFrames) {
	if f.count() == 0 {
		return
	}
	sent := 0
	var err error
	if f.upTo != 0 {
		if err = a.ch.Ack(f.upTo, true); err == nil {
			sent++
		}
	}
	for _, tag := range f.singles {
		if err != nil {
			break
		}
		if err = a.ch.Ack(tag, false); err == nil {
			sent++
		}
	}
	a.frames.Add(int64(sent))
	amqpMetrics.Add("source_ack_frames", int64(sent))
	if err != nil {
		a.mu.Lock()
		a.gone = true
		a.mu.Unlock()
		a.log.Warn("amqp ack failed; the broker will deliver the unacked messages again", "err", err)
	}
}
