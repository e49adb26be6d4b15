package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/taskotron-go/taskotron/atomicfile"
	"github.com/taskotron-go/taskotron/contract"
)

// DiskQueue is the embedded job queue: jobs live as one fsync'd file each in
// a folder, so a crash loses none, and a job handed to a worker stays on disk
// until it is acked. Higher priority goes first; equal priority, oldest first.
type DiskQueue struct {
	dir string

	mu       sync.Mutex
	wake     chan struct{} // closed and replaced whenever the state changes
	pending  []queued
	inflight map[string]queued
	seq      uint64
	sealed   bool
}

type queued struct {
	seq  uint64
	file string
	job  contract.Job
}

// OpenDiskQueue opens (creating if needed) the queue kept in dir. Jobs left
// there by an earlier process, acked or not, are pending again: a job whose
// worker died runs again.
func OpenDiskQueue(dir string) (*DiskQueue, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("job queue folder %s: %w", dir, err)
	}
	q := &DiskQueue{dir: dir, wake: make(chan struct{}), inflight: map[string]queued{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("job queue folder %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		seqText, _, _ := strings.Cut(name, "-")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err != nil {
			continue // not one of ours
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("job queue file %s: %w", name, err)
		}
		var job contract.Job
		if err := json.Unmarshal(raw, &job); err != nil {
			// A torn or foreign file: keep it for a person to look at.
			if err := q.setAside(name); err != nil {
				return nil, err
			}
			continue
		}
		q.pending = append(q.pending, queued{seq: seq, file: name, job: job})
		if seq >= q.seq {
			q.seq = seq + 1
		}
	}
	sort.Slice(q.pending, func(i, j int) bool { return q.pending[i].seq < q.pending[j].seq })
	return q, nil
}

func (q *DiskQueue) setAside(name string) error {
	bad := filepath.Join(q.dir, "unreadable")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	if err := os.Rename(filepath.Join(q.dir, name), filepath.Join(bad, name)); err != nil {
		return fmt.Errorf("job queue: setting aside unreadable %s: %w", name, err)
	}
	return nil
}

// Publish stores the jobs durably and makes them available to workers.
func (q *DiskQueue) Publish(ctx context.Context, jobs ...contract.Job) error {
	var added []queued
	for _, job := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.mu.Lock()
		seq := q.seq
		q.seq++
		q.mu.Unlock()
		item := queued{seq: seq, file: fmt.Sprintf("%020d-%s.json", seq, safeName(job.UUID)), job: job}
		if err := q.write(item); err != nil {
			return err
		}
		added = append(added, item)
	}
	q.mu.Lock()
	q.pending = append(q.pending, added...)
	q.signalLocked()
	q.mu.Unlock()
	return nil
}

// Next hands out the best pending job, counting the attempt on disk first so
// that a job whose worker crashes is seen as attempted when it comes back.
// It returns ErrDrained once the queue is sealed, empty and nothing is in flight.
func (q *DiskQueue) Next(ctx context.Context) (JobDelivery, error) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			best := 0
			for i, p := range q.pending {
				if p.job.Priority > q.pending[best].job.Priority {
					best = i
				}
			}
			item := q.pending[best]
			q.pending = append(q.pending[:best], q.pending[best+1:]...)
			q.inflight[item.file] = item
			q.mu.Unlock()
			item.job.Attempt++
			if err := q.write(item); err != nil {
				q.requeue(item)
				return JobDelivery{}, err
			}
			return NewJobDelivery(item.job,
				func() error { return q.ack(item) },
				func() error { q.requeue(item); return nil }), nil
		}
		if q.sealed && len(q.inflight) == 0 {
			q.mu.Unlock()
			return JobDelivery{}, ErrDrained
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return JobDelivery{}, ctx.Err()
		case <-wake:
		}
	}
}

// Seal says no more jobs will be published: Next returns ErrDrained when
// the queue is empty and no job is in flight.
func (q *DiskQueue) Seal() {
	q.mu.Lock()
	q.sealed = true
	q.signalLocked()
	q.mu.Unlock()
}

// Len counts the jobs pending and in flight.
func (q *DiskQueue) Len() (pending, inflight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending), len(q.inflight)
}

func (q *DiskQueue) ack(item queued) error {
	err := os.Remove(filepath.Join(q.dir, item.file))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("job queue: acking %s: %w", item.file, err)
	}
	if err := syncDir(q.dir); err != nil {
		return err
	}
	q.mu.Lock()
	delete(q.inflight, item.file)
	q.signalLocked()
	q.mu.Unlock()
	return nil
}

func (q *DiskQueue) requeue(item queued) {
	q.mu.Lock()
	delete(q.inflight, item.file)
	q.pending = append(q.pending, item)
	sort.SliceStable(q.pending, func(i, j int) bool { return q.pending[i].seq < q.pending[j].seq })
	q.signalLocked()
	q.mu.Unlock()
}

func (q *DiskQueue) signalLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// write stores a job atomically and durably.
func (q *DiskQueue) write(item queued) error {
	raw, err := json.Marshal(item.job)
	if err != nil {
		return fmt.Errorf("job queue: encoding job %s: %w", item.job.UUID, err)
	}
	if err := atomicfile.Write(q.dir, item.file, raw); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return syncDir(q.dir)
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return nil
}

// safeName keeps a job's uuid usable in a file name whatever it holds.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "job"
	}
	return b.String()
}
