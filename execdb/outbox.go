package execdb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// Outbox is where a role puts the state changes it reports: Emit appends
// them to a file of its own and returns, whether the central server is there
// or not; Run sends them, in order and in batches, and forgets them once the
// server has them. A process killed loses nothing it emitted (the data is in
// the kernel once Emit returns; only a machine crash before the next flush
// can lose the last ones). A restarted role takes over the outbox its
// predecessor left, and sends what it held first.
type Outbox struct {
	dir      string
	producer string
	log      *slog.Logger
	lock     *os.File

	mu   sync.Mutex
	seq  uint64
	seg  int // segment being written
	f    *os.File
	size int64
	wake chan struct{}
}

// segmentMax is where a segment file is closed and the next one begun.
const segmentMax = 4 << 20

// OpenOutbox opens an outbox for role below root: the first folder
// root/<role>-N that no live process holds, so that several workers on one
// machine each have their own and a restarted one finds its predecessor's.
func OpenOutbox(root, role string, log *slog.Logger) (*Outbox, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("execution outbox %s: %w", root, err)
	}
	var b [4]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	for n := 0; n < 1000; n++ {
		dir := filepath.Join(root, fmt.Sprintf("%s-%d", role, n))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("execution outbox %s: %w", dir, err)
		}
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("execution outbox %s: %w", dir, err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			continue // a live process has it
		}
		o := &Outbox{dir: dir, log: log, lock: lock, wake: make(chan struct{}, 1),
			// Unique per process start: a resent event is the same event,
			// a new process's first one is not.
			producer: fmt.Sprintf("%s-%s-%d-%s", role, host, os.Getpid(), hex.EncodeToString(b[:]))}
		if err := o.openSegment(); err != nil {
			lock.Close()
			return nil, err
		}
		return o, nil
	}
	return nil, fmt.Errorf("execution outbox %s: no free folder for %s", root, role)
}

// Producer names the events' origin.
func (o *Outbox) Producer() string { return o.producer }

func segName(n int) string { return fmt.Sprintf("%08d.jsonl", n) }

func (o *Outbox) segments() ([]int, error) {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".jsonl")); err == nil && strings.HasSuffix(e.Name(), ".jsonl") {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// openSegment continues the last segment, dropping a line a crash cut
// short, or starts the first.
func (o *Outbox) openSegment() error {
	segs, err := o.segments()
	if err != nil {
		return fmt.Errorf("execution outbox %s: %w", o.dir, err)
	}
	o.seg = 1
	if len(segs) > 0 {
		o.seg = segs[len(segs)-1]
	}
	path := filepath.Join(o.dir, segName(o.seg))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("execution outbox: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("execution outbox %s: %w", path, err)
	}
	keep := int64(bytes.LastIndexByte(data, '\n') + 1)
	if keep != int64(len(data)) {
		if err := f.Truncate(keep); err != nil {
			f.Close()
			return fmt.Errorf("execution outbox %s: %w", path, err)
		}
	}
	if _, err := f.Seek(keep, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	o.f, o.size = f, keep
	return nil
}

// Emit appends events, in order, giving each its id (and time, when it has
// none).
func (o *Outbox) Emit(evs ...contract.ExecutionEvent) error {
	if len(evs) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var buf bytes.Buffer
	for _, ev := range evs {
		o.seq++
		ev.ID = fmt.Sprintf("%s-%d", o.producer, o.seq)
		if ev.Time.IsZero() {
			ev.Time = time.Now().UTC()
		}
		line, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("execution event %s: %w", ev.ID, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if o.size+int64(buf.Len()) > segmentMax && o.size > 0 {
		if err := o.f.Close(); err != nil {
			return err
		}
		o.seg++
		f, err := os.OpenFile(filepath.Join(o.dir, segName(o.seg)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("execution outbox: %w", err)
		}
		o.f, o.size = f, 0
	}
	// One write: a reader never sees half an event, a crash cuts at most
	// the last line, which openSegment drops.
	if _, err := o.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("execution outbox: %w", err)
	}
	o.size += int64(buf.Len())
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// cursor is how far the server has the outbox: segment and byte offset.
type cursor struct {
	Segment int   `json:"segment"`
	Offset  int64 `json:"offset"`
}

func (o *Outbox) readCursor() cursor {
	c := cursor{Segment: 1}
	if raw, err := os.ReadFile(filepath.Join(o.dir, "cursor.json")); err == nil {
		json.Unmarshal(raw, &c)
	}
	return c
}

func (o *Outbox) writeCursor(c cursor) error {
	raw, _ := json.Marshal(c)
	tmp := filepath.Join(o.dir, "cursor.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(o.dir, "cursor.json"))
}

// next reads up to max events from c on, and the cursor past them.
func (o *Outbox) next(c cursor, max int) ([]contract.ExecutionEvent, cursor, error) {
	for {
		o.mu.Lock()
		writing := o.seg
		o.mu.Unlock()
		f, err := os.Open(filepath.Join(o.dir, segName(c.Segment)))
		if errors.Is(err, os.ErrNotExist) && c.Segment < writing {
			c = cursor{Segment: c.Segment + 1}
			continue
		}
		if err != nil {
			return nil, c, err
		}
		if _, err := f.Seek(c.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, c, err
		}
		var evs []contract.ExecutionEvent
		r := bufio.NewReaderSize(f, 64<<10)
		end := c
		for len(evs) < max {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break // the end, or a line still being written
			}
			end.Offset += int64(len(line))
			var ev contract.ExecutionEvent
			if json.Unmarshal(line, &ev) != nil {
				o.log.Error("execution outbox: unreadable event skipped", "segment", c.Segment, "offset", end.Offset)
				continue
			}
			evs = append(evs, ev)
		}
		f.Close()
		if len(evs) == 0 && c.Segment < writing {
			// This segment is done: go on with the next, and drop it.
			os.Remove(filepath.Join(o.dir, segName(c.Segment)))
			c = cursor{Segment: c.Segment + 1}
			continue
		}
		return evs, end, nil
	}
}

// Pending counts events not yet taken by the server (an estimate in bytes
// is cheaper; this reads the segments, for tests and `taskotron queue`).
func (o *Outbox) Pending() (int, error) {
	c := o.readCursor()
	n := 0
	for {
		evs, end, err := o.next(c, 10000)
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			return n, nil
		}
		n += len(evs)
		c = end
	}
}

// Run sends what the outbox holds to send (the central server's Post),
// oldest first, until ctx ends; then, for up to a few seconds, what is left.
// A batch the server refuses for what it holds (a 4xx) is logged and
// skipped, so that one bad event never holds up the rest.
func (o *Outbox) Run(ctx context.Context, send func(context.Context, []contract.ExecutionEvent) error) {
	c := o.readCursor()
	failures := 0
	var drain context.Context // once ctx ends: a few seconds to send the rest
	for {
		if ctx.Err() != nil && drain == nil {
			var cancel context.CancelFunc
			drain, cancel = context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
		}
		evs, end, err := o.next(c, 500)
		if err != nil {
			o.log.Error("execution outbox unreadable", "dir", o.dir, "err", err)
		}
		if len(evs) > 0 {
			sctx := ctx
			if drain != nil {
				sctx = drain
			}
			err := send(sctx, evs)
			if err == nil || Final(err) {
				if err != nil {
					o.log.Error("the executions server refused events; skipped", "events", len(evs), "first", evs[0].ID, "err", err)
				}
				if failures > 0 {
					o.log.Info("executions server reachable again; sending what waited")
				}
				failures = 0
				c = end
				if err := o.writeCursor(c); err != nil {
					o.log.Error("execution outbox cursor not saved; events may be sent again", "err", err)
				}
				continue
			}
			failures++
			if failures == 1 {
				o.log.Warn("executions server unavailable; state changes wait in the outbox", "err", err)
			}
		}
		if drain != nil {
			if len(evs) == 0 || drain.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// Idle: new events wake it (a poll each second covers a missed
		// wake). Failing: back off, whatever comes meanwhile.
		wait, wake := time.Second, o.wake
		if failures > 0 {
			wait, wake = min(time.Duration(1<<min(failures, 6))*100*time.Millisecond, 5*time.Second), nil
		}
		select {
		case <-wake:
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// Close releases the outbox (its folder may then be taken by another).
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.f.Close()
	return o.lock.Close()
}
