package trigger

import (
	"sync/atomic"
	"time"
)

// Live counts what a running relay does, for /metrics and /status, while
// RelayWith's Stats come only at its end. Observe is its RelayOptions.OnOutcome:
// a few atomic adds per message, no lock and no allocation, so the relay
// does not slow down.
type Live struct {
	messages, jobs, ignored, rejected, fused, unacked, duplicates atomic.Int64
	last                                                          atomic.Int64 // unix nanos of the last outcome
	publishErr                                                    atomic.Pointer[publishFailure]
}

type publishFailure struct {
	since time.Time
	err   error
}

// Published is the relay's RelayOptions.OnPublish: it remembers since when
// publishing jobs fails, until it works again.
func (l *Live) Published(err error) {
	if err == nil {
		if l.publishErr.Load() != nil {
			l.publishErr.Store(nil)
		}
		return
	}
	if f := l.publishErr.Load(); f != nil {
		l.publishErr.Store(&publishFailure{since: f.since, err: err})
		return
	}
	l.publishErr.Store(&publishFailure{since: time.Now(), err: err})
}

// PublishFailing says since when publishing jobs has failed, and why; the
// zero time while it works.
func (l *Live) PublishFailing() (since time.Time, err error) {
	if f := l.publishErr.Load(); f != nil {
		return f.since, f.err
	}
	return time.Time{}, nil
}

// LiveStats is a Live's counters at one moment.
type LiveStats struct {
	Messages   int64 `json:"messages"`
	Jobs       int64 `json:"jobs"`
	Ignored    int64 `json:"ignored"`
	Rejected   int64 `json:"rejected"`
	Fused      int64 `json:"fused"`
	Unacked    int64 `json:"unacked"`
	Duplicates int64 `json:"duplicates"`
	// Relayed is Messages less Ignored, Rejected, Fused and Unacked: the
	// messages whose jobs (possibly none) were queued.
	Relayed int64 `json:"relayed"`
	// LastMessage is when the last message was done with; zero before the first.
	LastMessage time.Time `json:"last_message,omitzero"`
}

// Observe counts one message's outcome.
func (l *Live) Observe(o MessageOutcome) {
	l.messages.Add(1)
	switch o.Outcome {
	case OutcomeJobs:
		l.jobs.Add(int64(len(o.Jobs)))
	case OutcomeIgnored:
		l.ignored.Add(1)
	case OutcomeRejected:
		l.rejected.Add(1)
	case OutcomeFused:
		l.fused.Add(1)
	case OutcomeUnacked:
		l.unacked.Add(1)
	}
	if o.Duplicates > 0 {
		l.duplicates.Add(int64(o.Duplicates))
	}
	l.last.Store(time.Now().UnixNano())
}

// Snapshot reads the counters.
func (l *Live) Snapshot() LiveStats {
	s := LiveStats{
		Messages: l.messages.Load(), Jobs: l.jobs.Load(), Ignored: l.ignored.Load(), Rejected: l.rejected.Load(),
		Fused: l.fused.Load(), Unacked: l.unacked.Load(), Duplicates: l.duplicates.Load(),
	}
	s.Relayed = s.Messages - s.Ignored - s.Rejected - s.Fused - s.Unacked
	if n := l.last.Load(); n != 0 {
		s.LastMessage = time.Unix(0, n).UTC()
	}
	return s
}
