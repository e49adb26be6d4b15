package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

func job(uuid string, prio int) contract.Job {
	return contract.Job{Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64", UUID: uuid, Priority: prio}
}

func TestDiskQueuePriorityThenAge(t *testing.T) {
	q, err := OpenDiskQueue(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := q.Publish(ctx, job("low-1", 0), job("high", 5), job("low-2", 0)); err != nil {
		t.Fatal(err)
	}
	var order []string
	for i := 0; i < 3; i++ {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, d.Job.UUID)
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(order) != "[high low-1 low-2]" {
		t.Errorf("order %v", order)
	}
}

func TestDiskQueueRedeliversUnackedJobsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	q, _ := OpenDiskQueue(dir)
	q.Publish(ctx, job("a", 0), job("b", 0))
	d, _ := q.Next(ctx) // a: taken, then the process "dies"
	if d.Job.Attempt != 1 {
		t.Errorf("first delivery attempt = %d, want 1", d.Job.Attempt)
	}
	d2, _ := q.Next(ctx)
	d2.Ack() // b: done

	q2, err := OpenDiskQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := q2.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Job.UUID != "a" || again.Job.Attempt != 2 {
		t.Errorf("after restart got %s attempt %d, want a attempt 2", again.Job.UUID, again.Job.Attempt)
	}
	again.Ack()
	q2.Seal()
	if _, err := q2.Next(ctx); !errors.Is(err, ErrDrained) {
		t.Errorf("sealed empty queue: err = %v, want ErrDrained", err)
	}
	left, _ := os.ReadDir(dir)
	for _, e := range left {
		if !e.IsDir() {
			t.Errorf("file left after every ack: %s", e.Name())
		}
	}
}

func TestDiskQueueNackHandsTheJobBack(t *testing.T) {
	q, _ := OpenDiskQueue(t.TempDir())
	ctx := context.Background()
	q.Publish(ctx, job("a", 0))
	d, _ := q.Next(ctx)
	d.Nack()
	d2, err := q.Next(ctx)
	if err != nil || d2.Job.UUID != "a" || d2.Job.Attempt != 2 {
		t.Fatalf("after nack: %+v %v", d2.Job, err)
	}
}

func TestDiskQueueDrainsOnlyWhenNothingIsInFlight(t *testing.T) {
	q, _ := OpenDiskQueue(t.TempDir())
	ctx := context.Background()
	q.Publish(ctx, job("a", 0))
	d, _ := q.Next(ctx)
	q.Seal()
	done := make(chan error, 1)
	go func() { _, err := q.Next(ctx); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Next returned %v while a job was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	d.Nack() // the job comes back: Next must hand it out, not drain
	if err := <-done; err != nil {
		t.Fatalf("Next after nack: %v", err)
	}
}

func TestDiskQueueSetsAsideATornFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/00000000000000000007-x.json", []byte(`{"item": "tru`), 0o644)
	q, err := OpenDiskQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := q.Len(); p != 0 {
		t.Errorf("pending = %d", p)
	}
	if _, err := os.Stat(dir + "/unreadable/00000000000000000007-x.json"); err != nil {
		t.Errorf("torn file not set aside: %v", err)
	}
}

func TestDiskQueueConcurrentWorkersSeeEachJobOnce(t *testing.T) {
	q, _ := OpenDiskQueue(t.TempDir())
	ctx := context.Background()
	const n = 200
	for i := 0; i < n; i++ {
		q.Publish(ctx, job(fmt.Sprintf("j%03d", i), i%3))
	}
	q.Seal()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, err := q.Next(ctx)
				if errors.Is(err, ErrDrained) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[d.Job.UUID]++
				mu.Unlock()
				d.Ack()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("saw %d distinct jobs, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
}
