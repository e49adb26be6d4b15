package trigger

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// A fuser merges bursts of tag events (reference §3.4, fuse_delay): the
// first event for a tag opens a group per {item, task, arch} job; later
// events within the delay join it instead of making jobs; when the delay
// after the first event is over, the group's jobs are published and the
// messages that opened groups are acked. Those stay unacked while they wait,
// so a crash loses nothing: the bus delivers them again and they open their
// groups again. A later event that opens no group is acked at once: it adds
// nothing a redelivery of the first would not make again, and held it would
// take one of the few unacked messages the broker hands out (prefetch).
type fuser struct {
	r     *relay
	delay time.Duration

	mu     sync.Mutex
	groups map[string]*fuseGroup
}

type fuseGroup struct {
	job      contract.Job
	deadline time.Time
	members  []*fusedMsg
}

type fusedMsg struct {
	d       bus.Delivery
	out     MessageOutcome
	jobs    []contract.Job // the jobs this message contributed
	waiting int            // groups it is still in
	refused string         // why one of its groups' jobs could not be queued
}

func newFuser(r *relay, delay time.Duration) *fuser {
	return &fuser{r: r, delay: delay, groups: map[string]*fuseGroup{}}
}

// fusable: only tag events are fused (their item is the tag).
func fusable(jobs []contract.Job) bool {
	if len(jobs) == 0 {
		return false
	}
	for _, j := range jobs {
		if j.ItemType != "koji_tag" {
			return false
		}
	}
	return true
}

func (f *fuser) add(ctx context.Context, d bus.Delivery, h handled, out MessageOutcome) {
	now := f.r.t.opts.Now()
	m := &fusedMsg{d: d, out: out}
	f.mu.Lock()
	opens := false
	for _, j := range h.jobs {
		if _, ok := f.groups[Key(j)]; !ok {
			opens = true
		}
	}
	if opens {
		for _, j := range h.jobs {
			k := Key(j)
			g, ok := f.groups[k]
			if !ok {
				g = &fuseGroup{job: j, deadline: now.Add(f.delay)}
				f.groups[k] = g
				m.jobs = append(m.jobs, j)
			}
			g.members = append(g.members, m)
			m.waiting++
		}
	}
	f.mu.Unlock()
	if !opens {
		out.Outcome = OutcomeFused
		f.r.finish(ctx, []bus.Delivery{d}, []MessageOutcome{out}, nil, [][]contract.Job{nil})
	}
}

func (f *fuser) run(ctx context.Context) {
	tick := f.delay / 10
	if tick > time.Second {
		tick = time.Second
	}
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.flush(ctx, false)
		}
	}
}

// flush publishes the groups that are due (all of them when all is set)
// and acks the messages whose last group that was.
func (f *fuser) flush(ctx context.Context, all bool) {
	now := f.r.t.opts.Now()
	f.mu.Lock()
	var due []*fuseGroup
	for k, g := range f.groups {
		if all || !now.Before(g.deadline) {
			due = append(due, g)
			delete(f.groups, k)
		}
	}
	f.mu.Unlock()
	if len(due) == 0 {
		return
	}
	published, refused, rest := f.publishGroups(ctx, due)
	if len(rest) > 0 {
		// Put them back: they are tried again at the next tick, and at
		// worst the messages stay unacked and come again.
		f.mu.Lock()
		for _, g := range rest {
			f.groups[Key(g.job)] = g
		}
		f.mu.Unlock()
	}
	var jobs []contract.Job
	for _, g := range published {
		jobs = append(jobs, g.job)
	}
	if len(jobs) > 0 {
		f.r.writeJobLog(jobs)
	}
	var ready []*fusedMsg
	f.mu.Lock()
	for _, g := range due {
		reason, isRefused := refused[g]
		if !isRefused && !slices.Contains(published, g) {
			continue
		}
		for _, m := range g.members {
			if isRefused && m.refused == "" {
				m.refused = reason
			}
			m.waiting--
			if m.waiting == 0 {
				ready = append(ready, m)
			}
		}
	}
	f.mu.Unlock()
	var ds []bus.Delivery
	var outs []MessageOutcome
	var per [][]contract.Job
	for _, m := range ready {
		if m.refused != "" {
			f.r.reject(m.d, m.out, m.refused)
			continue
		}
		ds, outs, per = append(ds, m.d), append(outs, m.out), append(per, m.jobs)
	}
	// The jobs are published already; finish only commits, logs and acks.
	f.r.finish(ctx, ds, outs, nil, per)
}

// publishGroups publishes the due groups' jobs together. Should the queue
// refuse them for what one holds, they go one by one, so that only the
// messages of the refused ones are set aside. rest are those not published
// for an outage (ctx ended while it lasted).
func (f *fuser) publishGroups(ctx context.Context, due []*fuseGroup) (published []*fuseGroup, refused map[*fuseGroup]string, rest []*fuseGroup) {
	jobs := make([]contract.Job, len(due))
	for i, g := range due {
		jobs[i] = g.job
	}
	err := f.r.publish(ctx, jobs)
	if err == nil {
		return due, nil, nil
	}
	if !errors.Is(err, bus.ErrRefused) {
		f.r.log.Error("fused jobs not published yet", "jobs", len(jobs), "err", bus.Truncate(err.Error(), bus.MaxReason))
		return nil, nil, due
	}
	refused = map[*fuseGroup]string{}
	for i, g := range due {
		err := f.r.publish(ctx, []contract.Job{g.job})
		switch {
		case err == nil:
			published = append(published, g)
		case errors.Is(err, bus.ErrRefused):
			refused[g] = err.Error()
		default:
			f.r.log.Error("fused jobs not published yet", "jobs", len(due)-i, "err", bus.Truncate(err.Error(), bus.MaxReason))
			return published, refused, due[i:]
		}
	}
	return published, refused, nil
}
