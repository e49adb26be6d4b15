package bus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var t0 = time.Date(2024, 6, 20, 15, 0, 0, 0, time.UTC)

func deliverTags(tr *ackTracker, from, to uint64) {
	for tag := from; tag <= to; tag++ {
		tr.deliver(tag)
	}
}

func finishTags(t *testing.T, tr *ackTracker, at time.Time, tags ...uint64) {
	t.Helper()
	for _, tag := range tags {
		if !tr.finish(tag, at) {
			t.Fatalf("finish(%d) refused", tag)
		}
	}
}

func wantTake(t *testing.T, tr *ackTracker, now time.Time, upTo uint64, singles []uint64, next time.Time) {
	t.Helper()
	got, gotNext := tr.take(now, false)
	if got.upTo != upTo || !slices.Equal(got.singles, singles) || !gotNext.Equal(next) {
		t.Fatalf("take at +%v: multiple up to %d, singles %v, next +%v; want %d, %v, +%v",
			now.Sub(t0), got.upTo, got.singles, gotNext.Sub(t0), upTo, singles, next.Sub(t0))
	}
}

func TestAckTrackerInOrder(t *testing.T) {
	tr := newAckTracker(ackHold)
	deliverTags(tr, 1, 10)
	wantTake(t, tr, t0, 0, nil, time.Time{})
	finishTags(t, tr, t0, 1, 2, 3)
	wantTake(t, tr, t0, 3, nil, time.Time{})
	finishTags(t, tr, t0, 4, 5, 6, 7, 8, 9, 10)
	wantTake(t, tr, t0, 10, nil, time.Time{})
	wantTake(t, tr, t0.Add(time.Hour), 0, nil, time.Time{})
}

func TestAckTrackerOutOfOrder(t *testing.T) {
	tr := newAckTracker(ackHold)
	deliverTags(tr, 1, 5)
	finishTags(t, tr, t0, 3, 5)
	// 3 and 5 wait behind 1 (and 4).
	wantTake(t, tr, t0, 0, nil, t0.Add(ackHold))
	finishTags(t, tr, t0.Add(time.Millisecond), 1)
	wantTake(t, tr, t0.Add(time.Millisecond), 1, nil, t0.Add(ackHold))
	finishTags(t, tr, t0.Add(2*time.Millisecond), 2)
	wantTake(t, tr, t0.Add(2*time.Millisecond), 3, nil, t0.Add(ackHold))
	finishTags(t, tr, t0.Add(3*time.Millisecond), 4)
	wantTake(t, tr, t0.Add(3*time.Millisecond), 5, nil, time.Time{})
}

// A delivery held for long does not keep the later ones unacked: they go
// singly after ackHold, and the held one's multiple ack later names a tag
// that is still unacked (RabbitMQ closes the channel otherwise).
func TestAckTrackerHeld(t *testing.T) {
	tr := newAckTracker(ackHold)
	deliverTags(tr, 1, 5)
	finishTags(t, tr, t0, 2, 3, 4, 5)
	wantTake(t, tr, t0.Add(ackHold-time.Nanosecond), 0, nil, t0.Add(ackHold))
	wantTake(t, tr, t0.Add(ackHold), 0, []uint64{2, 3, 4, 5}, time.Time{})
	deliverTags(tr, 6, 7)
	t1 := t0.Add(time.Minute)
	finishTags(t, tr, t1, 6)
	wantTake(t, tr, t1.Add(ackHold), 0, []uint64{6}, time.Time{})
	// 1 ends: the multiple ack names 1 itself, not 6 (acked already).
	finishTags(t, tr, t1.Add(time.Minute), 1)
	wantTake(t, tr, t1.Add(time.Minute), 1, nil, time.Time{})
	finishTags(t, tr, t1.Add(time.Minute), 7)
	wantTake(t, tr, t1.Add(time.Minute), 7, nil, time.Time{})

	// Both kinds in one take: 2 was waiting for 1 when 1 ended; 4 waits for 3.
	tr = newAckTracker(ackHold)
	deliverTags(tr, 1, 4)
	finishTags(t, tr, t0, 2, 4)
	finishTags(t, tr, t0.Add(time.Millisecond), 1)
	wantTake(t, tr, t0.Add(ackHold), 2, []uint64{4}, time.Time{})
}

func TestAckTrackerEdges(t *testing.T) {
	tr := newAckTracker(ackHold)
	deliverTags(tr, 1, 3)
	if tr.finish(4, t0) {
		t.Error("finished a tag never delivered")
	}
	finishTags(t, tr, t0, 2)
	if tr.finish(2, t0) {
		t.Error("finished a tag twice")
	}
	// A clean shutdown takes every finished tag at once.
	got, next := tr.take(t0, true)
	if got.upTo != 0 || !slices.Equal(got.singles, []uint64{2}) || !next.IsZero() {
		t.Errorf("take all: %+v %v", got, next)
	}

	// A tag that skips the sequence: the missing one was never seen here, so
	// no multiple ack reaches it.
	tr = newAckTracker(ackHold)
	tr.deliver(1)
	tr.deliver(3)
	tr.deliver(2) // out of sequence: ignored, never acked
	finishTags(t, tr, t0, 1, 3)
	if tr.finish(2, t0) {
		t.Error("finished a tag delivered out of sequence")
	}
	wantTake(t, tr, t0, 1, nil, t0.Add(ackHold))
	wantTake(t, tr, t0.Add(ackHold), 0, []uint64{3}, time.Time{})
}

// brokerModel acks like RabbitMQ: a frame must name an unacked tag, and a
// multiple ack takes every unacked tag up to it. The test adds that no
// frame may cover a tag whose work is not finished.
type brokerModel struct {
	unacked  map[uint64]bool // tag → finished by the consumer
	frames   int
	messages int
}

func (b *brokerModel) apply(f ackFrames) error {
	if f.upTo != 0 {
		if _, ok := b.unacked[f.upTo]; !ok {
			return fmt.Errorf("multiple ack of %d: unknown delivery tag", f.upTo)
		}
		for tag, done := range b.unacked {
			if tag <= f.upTo {
				if !done {
					return fmt.Errorf("multiple ack of %d covers unfinished %d", f.upTo, tag)
				}
				delete(b.unacked, tag)
				b.messages++
			}
		}
		b.frames++
	}
	for _, tag := range f.singles {
		done, ok := b.unacked[tag]
		if !ok {
			return fmt.Errorf("single ack of %d: unknown delivery tag", tag)
		}
		if !done {
			return fmt.Errorf("single ack of unfinished %d", tag)
		}
		delete(b.unacked, tag)
		b.messages++
		b.frames++
	}
	return nil
}

// Random prefetch windows, finishing orders, holds and take times: no frame
// names an acked tag or covers an unfinished one, every finished tag is
// acked within ackHold of its finish, and Close's flush leaves only the
// unfinished ones.
func TestAckTrackerRandom(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(300)
		prefetch := 1 + r.IntN(60)
		held := map[uint64]bool{}
		for range r.IntN(4) {
			held[uint64(1+r.IntN(n))] = true
		}
		tr := newAckTracker(ackHold)
		b := &brokerModel{unacked: map[uint64]bool{}}
		finishedAt := map[uint64]time.Time{}
		now := t0
		var inFlight []uint64
		next := uint64(1)
		take := func(all bool) {
			f, _ := tr.take(now, all)
			if err := b.apply(f); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for tag, done := range b.unacked {
				if done && now.Sub(finishedAt[tag]) >= ackHold && !all {
					t.Fatalf("seed %d: %d finished at +%v still unacked at +%v", seed, tag, finishedAt[tag].Sub(t0), now.Sub(t0))
				}
			}
		}
		for {
			// The broker hands out up to prefetch unacked deliveries.
			for next <= uint64(n) && len(b.unacked) < prefetch && r.IntN(3) > 0 {
				tr.deliver(next)
				b.unacked[next] = false
				inFlight = append(inFlight, next)
				next++
			}
			var ready []int
			for i, tag := range inFlight {
				if !held[tag] {
					ready = append(ready, i)
				}
			}
			if len(ready) == 0 && (next > uint64(n) || len(b.unacked) >= prefetch) {
				break
			}
			if len(ready) > 0 && r.IntN(4) > 0 {
				i := ready[r.IntN(len(ready))]
				tag := inFlight[i]
				inFlight = slices.Delete(inFlight, i, i+1)
				if !tr.finish(tag, now) {
					t.Fatalf("seed %d: finish(%d) refused", seed, tag)
				}
				b.unacked[tag], finishedAt[tag] = true, now
			}
			now = now.Add(time.Duration(r.IntN(3000)) * time.Microsecond)
			if r.IntN(3) == 0 {
				take(false)
			}
		}
		take(false)
		take(true)
		var left []uint64
		for tag, done := range b.unacked {
			if done {
				t.Fatalf("seed %d: finished %d unacked after the flush", seed, tag)
			}
			left = append(left, tag)
		}
		if len(left) > len(held) {
			t.Fatalf("seed %d: %v unacked, only %v held", seed, left, held)
		}
		if b.frames > b.messages {
			t.Fatalf("seed %d: %d frames for %d messages", seed, b.frames, b.messages)
		}
	}
}

// ackFixture is a fresh queue with n messages (ids m-0 … m-(n-1)) and an
// AMQPSource on it.
func ackFixture(t *testing.T, n, prefetch int) (*AMQPSource, *amqp.Channel, string) {
	t.Helper()
	queue := randomName("test-acks")
	dlq := queue + ".deadletter"
	admin := adminChannel(t, &queue, &dlq)
	topic := "org.fedoraproject.prod.buildsys.tag." + queue
	src, err := OpenAMQPSource(t.Context(), AMQPSourceConfig{URL: testAMQPURL(), Queue: queue, Topics: []string{topic}, Prefetch: prefetch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := admin.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := admin.NotifyPublish(make(chan amqp.Confirmation, n))
	for i := range n {
		err := admin.PublishWithContext(t.Context(), "amq.topic", topic, false, false, amqp.Publishing{
			MessageId: fmt.Sprintf("m-%d", i), ContentType: "application/json", Body: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d not confirmed", c.DeliveryTag)
		}
	}
	return src, admin, queue
}

func nextN(t *testing.T, src *AMQPSource, n int) []Delivery {
	t.Helper()
	ds := make([]Delivery, 0, n)
	for range n {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		d, err := src.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(ds), n, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// leftIDs waits until the source's channel is gone on the broker (its
// unacked messages are back in the queue), then takes what is left.
func leftIDs(t *testing.T, admin *amqp.Channel, queue string) []string {
	t.Helper()
	waitFor(t, "the consumer gone", 10*time.Second, func() bool {
		q, err := admin.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Consumers == 0
	})
	var ids []string
	for {
		m, ok, err := admin.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			sort.Strings(ids)
			return ids
		}
		ids = append(ids, m.MessageId)
	}
}

func ackAll(t *testing.T, ds []Delivery, workers int) {
	t.Helper()
	work := make(chan Delivery)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range work {
				if err := d.Ack(); err != nil {
					t.Errorf("ack %s: %v", d.Origin, err)
				}
			}
		})
	}
	for _, d := range ds {
		work <- d
	}
	close(work)
	wg.Wait()
}

// Acks in shuffled order from several goroutines, some held past ackHold
// and then acked, some never: exactly the never-acked ones come back, and
// no frame upset the broker (a bad ack closes the channel: a reconnection).
func TestAMQPSourceAcksShuffled(t *testing.T) {
	const n = 500
	src, admin, queue := ackFixture(t, n, n)
	ds := nextN(t, src, n)
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	late, kept, rest := ds[:5], ds[5:10], ds[10:]
	framesBefore, metricBefore := src.AckFrames(), metricValue(t, "source_ack_frames")

	ackAll(t, rest, 8)
	time.Sleep(10 * ackHold) // the followers of held ones go singly
	ackAll(t, late, 2)
	time.Sleep(10 * ackHold)
	if c := src.Connections(); c != 1 {
		t.Fatalf("%d connections: an ack closed the channel", c)
	}
	frames := src.AckFrames() - framesBefore
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acks in %d frames", n-len(kept), frames)
	if frames > n-int64(len(kept)) {
		t.Errorf("%d frames for %d acks", frames, n-len(kept))
	}
	if m := metricValue(t, "source_ack_frames") - metricBefore; m != frames {
		t.Errorf("metric source_ack_frames went up by %d, the source counted %d frames", m, frames)
	}
	var want []string
	for _, d := range kept {
		want = append(want, d.Message.ID)
	}
	sort.Strings(want)
	if got := leftIDs(t, admin, queue); !slices.Equal(got, want) {
		t.Errorf("back in the queue: %v, want the unacked %v", got, want)
	}
	if err := kept[0].Ack(); err == nil || !strings.Contains(err.Error(), "deliver the message again") {
		t.Errorf("ack after Close: %v", err)
	}
}

// Acks that come close together, as from the relay's workers, share frames.
func TestAMQPSourceAcksCoalesce(t *testing.T) {
	const n = 500
	src, admin, queue := ackFixture(t, n, 100)
	work := make(chan Delivery)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for d := range work {
				if err := d.Ack(); err != nil {
					t.Errorf("ack %s: %v", d.Origin, err)
				}
			}
		})
	}
	for range n {
		work <- nextN(t, src, 1)[0]
	}
	close(work)
	wg.Wait()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	frames := src.AckFrames()
	t.Logf("%d acks in %d frames", n, frames)
	if frames >= n/2 {
		t.Errorf("%d frames for %d acks, want fewer than %d", frames, n, n/2)
	}
	if left := leftIDs(t, admin, queue); len(left) != 0 {
		t.Errorf("%d messages back in the queue: %v", len(left), left)
	}
}

// Close sends the acks it holds before it closes the connection: those
// waiting behind an unacked message, and those just recorded.
func TestAMQPSourceCloseFlushesAcks(t *testing.T) {
	const n = 200
	src, admin, queue := ackFixture(t, n, n)
	ds := nextN(t, src, n)
	ackAll(t, ds[1:], 1)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got := leftIDs(t, admin, queue); !slices.Equal(got, []string{ds[0].Message.ID}) {
		t.Errorf("back in the queue: %v, want only the unacked %s", got, ds[0].Message.ID)
	}

	src, admin, queue = ackFixture(t, n, n)
	ackAll(t, nextN(t, src, n), 4)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got := leftIDs(t, admin, queue); len(got) != 0 {
		t.Errorf("%d messages back in the queue after acking all: %v", len(got), got)
	}
}

// A delivery of a connection that is gone cannot be acked: Ack says so, and
// the message comes again on the next connection.
func TestAMQPSourceAckAfterReconnect(t *testing.T) {
	src, admin, queue := ackFixture(t, 1, 10)
	d := nextN(t, src, 1)[0]
	// Deleting the queue cancels the consumer: the source reconnects.
	if _, err := admin.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnection", 10*time.Second, func() bool { return src.Connections() >= 2 })
	if err := d.Ack(); err == nil || !strings.Contains(err.Error(), "deliver the message again") {
		t.Errorf("ack of the lost connection's delivery: %v", err)
	}
	if err := d.Reject("bad"); err == nil || !strings.Contains(err.Error(), "deliver the message again") {
		t.Errorf("reject of the lost connection's delivery: %v", err)
	}
}
