package trigger

import (
	"io"
	"log/slog"
	"sync"
)

// groupWriter lets the relay's workers share write calls on the job log:
// a worker that finds no write under way writes everything queued so far,
// the others wait until their bytes are written. Each Write's bytes stay
// together, and each returns only once they are in the underlying writer,
// as with a plain Write; under load there is one system call per group
// instead of one per message.
type groupWriter struct {
	w   io.Writer
	log *slog.Logger

	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte // the group being filled
	spare   []byte // the last group's buffer, for reuse
	started uint64 // groups taken for writing
	written uint64 // groups written (or failed)
	writing bool
}

func newGroupWriter(w io.Writer, log *slog.Logger) *groupWriter {
	g := &groupWriter{w: w, log: log}
	g.cond.L = &g.mu
	return g
}

// Write queues p and returns once it is written. A failed write is logged
// here, once for its group.
func (g *groupWriter) Write(p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, p...)
	mine := g.started + 1
	for g.written < mine {
		if g.writing {
			g.cond.Wait()
			continue
		}
		g.writing = true
		g.started++
		group, n := g.buf, g.started
		g.buf = g.spare[:0]
		g.mu.Unlock()
		_, err := g.w.Write(group)
		if err != nil {
			g.log.Error("job log write failed", "bytes", len(group), "err", err)
		}
		g.mu.Lock()
		g.spare, g.written, g.writing = group, n, false
		g.cond.Broadcast()
	}
}
