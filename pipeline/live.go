package pipeline

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
	"github.com/taskotron-go/taskotron/status"
	"github.com/taskotron-go/taskotron/trigger"
	"github.com/taskotron-go/taskotron/worker"
)

// Progress is how far an `up` is, for a live display: messages read, jobs
// queued, running and done.
type Progress struct {
	Messages int
	// ByStatus counts messages by what the trigger did (jobs, ignored, …).
	ByStatus map[string]int
	Queued   int // jobs the messages made
	Running  []worker.JobState
	Waiting  int // jobs waiting out a retry backoff
	Done     int
	// ByOutcome counts finished jobs by their worst result.
	ByOutcome map[contract.Outcome]int
}

// progress reads the tally and the worker's part of the status document.
func (t *tally) progress(ops *status.Server) Progress {
	p := Progress{ByStatus: map[string]int{}, ByOutcome: map[contract.Outcome]int{}}
	if snap, ok := ops.Snapshot().Parts["worker"].(worker.WorkerSnapshot); ok {
		p.Running, p.Waiting = snap.Running, len(snap.Waiting)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p.Messages = len(t.messages)
	for _, m := range t.messages {
		p.ByStatus[m.Status]++
		p.Queued += len(m.Jobs)
	}
	for _, exec := range t.done {
		p.Done++
		p.ByOutcome[worstOutcome(exec)]++
	}
	return p
}

// worstOutcome is the outcome a job shows: the worst of its results, or
// its execution status when it has none.
func worstOutcome(exec contract.Execution) contract.Outcome {
	worst, _ := results.Worst(exec)
	if worst == "" {
		worst = contract.Outcome(exec.ExecutionStatus)
	}
	return worst
}

// Lines is the progress as a person reads it, a few lines:
//
//	messages  7 read: 5 made jobs, 2 ignored
//	jobs      9 queued, 2 running, 5 done: 4 PASSED, 1 FAILED
//	  rpmlint          x86_64  chromium-80.0.3987.132-1.fc33  run rpmlint
func (p Progress) Lines() []string {
	var ms []string
	for _, st := range []string{trigger.OutcomeJobs, trigger.OutcomeFused, trigger.OutcomeIgnored, trigger.OutcomeRejected, trigger.OutcomeUnacked} {
		if n := p.ByStatus[st]; n > 0 {
			label := st
			if st == trigger.OutcomeJobs {
				label = "made jobs"
			}
			ms = append(ms, fmt.Sprintf("%d %s", n, label))
		}
	}
	msgLine := fmt.Sprintf("messages  %d read", p.Messages)
	if len(ms) > 0 {
		msgLine += ": " + strings.Join(ms, ", ")
	}
	jobs := fmt.Sprintf("jobs      %d queued, %d running", p.Queued, len(p.Running))
	if p.Waiting > 0 {
		jobs += fmt.Sprintf(", %d waiting to retry", p.Waiting)
	}
	jobs += fmt.Sprintf(", %d done", p.Done)
	if len(p.ByOutcome) > 0 {
		keys := make([]contract.Outcome, 0, len(p.ByOutcome))
		for o := range p.ByOutcome {
			keys = append(keys, o)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].Rank() != keys[j].Rank() {
				return keys[i].Rank() < keys[j].Rank()
			}
			return keys[i] < keys[j]
		})
		var os []string
		for _, o := range keys {
			os = append(os, fmt.Sprintf("%d %s", p.ByOutcome[o], o))
		}
		jobs += ": " + strings.Join(os, ", ")
	}
	lines := []string{msgLine, jobs}
	for _, j := range p.Running {
		lines = append(lines, fmt.Sprintf("  %-16s %-7s %s  %s", j.Task, j.Arch, j.Item, j.Action))
	}
	return lines
}

// Live draws Progress on a terminal, redrawing its lines in place, and
// prints log lines (warnings) above them.
type Live struct {
	w     io.Writer
	width func() int

	mu    sync.Mutex
	drawn int // lines of the last frame, to move back over
	last  []string
}

// NewLive draws on w; width tells the terminal's columns (lines are cut
// to it, since a wrapped line would spoil the redraw).
func NewLive(w io.Writer, width func() int) *Live {
	return &Live{w: w, width: width}
}

// Draw replaces the last frame with p.
func (l *Live) Draw(p Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = p.Lines()
	l.redraw("")
}

// Write prints log output above the frame, one line per line of p; it is
// an io.Writer for a log handler.
func (l *Live) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.redraw(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// redraw moves to the frame's first line, clears to the end of the screen,
// prints above (if any) and the frame again.
func (l *Live) redraw(above string) {
	var b strings.Builder
	if l.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", l.drawn)
	}
	b.WriteString("\r\x1b[J")
	if above != "" {
		b.WriteString(strings.ReplaceAll(above, "\n", "\r\n"))
		b.WriteString("\r\n")
	}
	width := 80
	if l.width != nil {
		if w := l.width(); w > 0 {
			width = w
		}
	}
	for _, line := range l.last {
		b.WriteString(cut(line, width-1))
		b.WriteString("\r\n")
	}
	l.drawn = len(l.last)
	_, _ = io.WriteString(l.w, b.String())
}

// Run redraws get() every interval until ctx ends, then draws once more.
func (l *Live) Run(ctx context.Context, get func() Progress, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		l.Draw(get())
		select {
		case <-ctx.Done():
			l.Draw(get())
			return
		case <-tick.C:
		}
	}
}

// cut shortens s to n characters, marking the cut.
func cut(s string, n int) string {
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
