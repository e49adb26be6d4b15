package status

import (
	"fmt"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
	"github.com/taskotron-go/taskotron/trigger"
)

// DepthTTL is how long queue depths read from the broker or the spool
// folder are reused: a scrape every second costs one look every DepthTTL.
var DepthTTL = 5 * time.Second

// TriggerParts are what a running trigger shows.
type TriggerParts struct {
	Live *trigger.Live
	// Rules names the rules in force and counts them (they reload on SIGHUP).
	Rules func() (name string, count int)
	// Source is the AMQP source; nil when messages come from files.
	Source *bus.AMQPSource
	// Grace is how long the source may be disconnected before /healthz says so.
	Grace time.Duration
}

// AddTrigger adds a trigger's health check, metrics and status.
func AddTrigger(s *Server, p TriggerParts) {
	if p.Source != nil {
		src := p.Source
		s.AddCheck(Check{Name: "amqp source", Grace: p.Grace, Probe: func() error {
			if !src.Connected() {
				return fmt.Errorf("not connected to the broker (queue %s); reconnecting", src.QueueName())
			}
			return nil
		}})
	}
	s.AddMetrics(func() []Metric {
		st := p.Live.Snapshot()
		out := []Metric{
			{Name: "taskotron_trigger_messages_total", Type: Counter, Help: "Bus messages done with, by outcome (jobs: its jobs, possibly none, are queued).",
				Samples: []Sample{
					{Labels("outcome", trigger.OutcomeJobs), float64(st.Relayed)},
					{Labels("outcome", trigger.OutcomeIgnored), float64(st.Ignored)},
					{Labels("outcome", trigger.OutcomeRejected), float64(st.Rejected)},
					{Labels("outcome", trigger.OutcomeFused), float64(st.Fused)},
					{Labels("outcome", trigger.OutcomeUnacked), float64(st.Unacked)},
				}},
			One("taskotron_trigger_jobs_queued_total", Counter, "Jobs put on the job queue.", float64(st.Jobs)),
			One("taskotron_trigger_duplicates_total", Counter, "Jobs not queued again: the same job was queued within the dedup window.", float64(st.Duplicates)),
		}
		if !st.LastMessage.IsZero() {
			out = append(out, One("taskotron_trigger_last_message_timestamp_seconds", Gauge, "When the last message was done with.", float64(st.LastMessage.UnixNano())/1e9))
		}
		if p.Rules != nil {
			_, n := p.Rules()
			out = append(out, One("taskotron_trigger_rules", Gauge, "Rules in force.", float64(n)))
		}
		if p.Source != nil {
			out = append(out, One("taskotron_amqp_source_connected", Gauge, "1 while the trigger is connected to the broker.", b2f(p.Source.Connected())),
				One("taskotron_amqp_source_connections_total", Counter, "Connections made to the broker (1 + reconnections).", float64(p.Source.Connections())))
		}
		return out
	})
	s.AddSection("trigger", func() any {
		doc := map[string]any{"counters": p.Live.Snapshot()}
		if p.Rules != nil {
			name, n := p.Rules()
			doc["rules"] = map[string]any{"name": name, "count": n}
		}
		if p.Source != nil {
			doc["amqp"] = map[string]any{"queue": p.Source.QueueName(), "connected": p.Source.Connected(),
				"connections": p.Source.Connections(), "stalls": p.Source.Stalls(), "ack_frames": p.Source.AckFrames()}
		}
		return doc
	})
}

// AddAMQPCounters exports the process's AMQP transport counters (expvar
// taskotron_amqp): delivered, dead-lettered, reconnects, watchdog stalls,
// acks and ack frames, jobs published.
func AddAMQPCounters(s *Server) {
	help := map[string]string{
		"source_delivered":     "Bus messages delivered by the broker to the trigger.",
		"source_acked":         "Bus messages acked.",
		"source_ack_frames":    "basic.ack frames sent; one frame acks a run of messages.",
		"source_dead_lettered": "Malformed bus messages set aside in the dead-letter queue.",
		"source_reconnects":    "Reconnections of the trigger to the broker after a lost connection.",
		"source_stalls":        "Watchdog reports: nothing delivered for a whole period while the queue had a backlog.",
		"jobs_published":       "Jobs published to the job queues and confirmed by the broker.",
	}
	s.AddMetrics(func() []Metric {
		c := bus.AMQPCounters()
		// Zero until the first event, so a dashboard sees every series.
		for k := range help {
			if _, ok := c[k]; !ok {
				c[k] = 0
			}
		}
		var out []Metric
		for _, k := range sortedKeys(c) {
			h := help[k]
			if h == "" {
				h = "AMQP transport counter " + k + "."
			}
			out = append(out, One("taskotron_amqp_"+k+"_total", Counter, h, float64(c[k])))
		}
		return out
	})
}

// WorkerParts are what a running worker shows.
type WorkerParts struct {
	Tracker     *runner.Tracker
	Concurrency int
	// AMQP is the worker's job queue on the broker; nil for the on-disk queue.
	AMQP *bus.AMQPJobQueue
	// URL is the broker's, for messages (the password is hidden).
	URL string
	// Grace is how long the queue may be unreachable before /healthz says so.
	Grace time.Duration
}

// AddWorker adds a worker's health check, metrics and status.
func AddWorker(s *Server, p WorkerParts) {
	if p.AMQP != nil {
		q := p.AMQP
		s.AddCheck(Check{Name: "job queue", Grace: p.Grace, Probe: func() error {
			if !q.Connected() {
				return fmt.Errorf("cannot reach the job queue on %s", bus.RedactURL(p.URL))
			}
			return nil
		}})
	}
	s.AddMetrics(func() []Metric {
		snap := p.Tracker.Snapshot()
		fin := Metric{Name: "taskotron_worker_jobs_finished_total", Type: Counter, Help: "Jobs reported and acked, by execution status."}
		for _, k := range sortedKeys(snap.Finished) {
			fin.Samples = append(fin.Samples, Sample{Labels("status", k), float64(snap.Finished[k])})
		}
		out := []Metric{
			One("taskotron_worker_jobs_running", Gauge, "Jobs running (or reporting) now.", float64(len(snap.Running))),
			One("taskotron_worker_jobs_waiting_retry", Gauge, "Jobs held while they wait out the backoff before their next attempt.", float64(len(snap.Waiting))),
			One("taskotron_worker_concurrency", Gauge, "Jobs the worker runs at once at most.", float64(p.Concurrency)),
			One("taskotron_worker_attempts_total", Counter, "Jobs taken from the queue (each attempt counts).", float64(snap.Attempts)),
			One("taskotron_worker_handed_back_total", Counter, "Jobs handed back to the queue (interrupted, or results not delivered).", float64(snap.HandedBack)),
			One("taskotron_worker_retries_total", Counter, "Jobs published again for a later attempt after an infrastructure failure.", float64(snap.Retries)),
		}
		if len(fin.Samples) > 0 {
			out = append(out, fin)
		}
		if p.AMQP != nil {
			out = append(out, One("taskotron_worker_queue_connected", Gauge, "1 while the worker is connected to the job queue's broker.", b2f(p.AMQP.Connected())))
		}
		return out
	})
	s.AddSection("worker", func() any { return p.Tracker.Snapshot() })
}

// AddSpool adds the reporter spool's counts, read at most every DepthTTL.
func AddSpool(s *Server, dir string) {
	c := &Cache[reporter.Pending]{TTL: DepthTTL, Load: func() (reporter.Pending, error) { return reporter.SpoolPending(dir) }}
	s.AddMetrics(func() []Metric {
		p, err := c.Get()
		if err != nil {
			return nil
		}
		return []Metric{{Name: "taskotron_spool_pending", Type: Gauge, Help: "What the reporter spool holds: posts and Bodhi comments waiting, and those refused.",
			Samples: []Sample{
				{Labels("kind", "posts"), float64(p.Posts)},
				{Labels("kind", "rejected_posts"), float64(p.RejectedPosts)},
				{Labels("kind", "comments"), float64(p.Comments)},
				{Labels("kind", "rejected_comments"), float64(p.RejectedComments)},
			}}}
	})
	s.AddSection("spool", func() any {
		p, err := c.Get()
		if err != nil {
			return map[string]any{"dir": dir, "error": err.Error()}
		}
		return map[string]any{"dir": dir, "pending": p}
	})
}

// AddBrokerQueues adds the depths of the configuration's AMQP queues, read
// from the broker at most every DepthTTL.
func AddBrokerQueues(s *Server, cfg config.Config, arches ...string) {
	c := &Cache[[]bus.QueueDepth]{TTL: DepthTTL, Load: func() ([]bus.QueueDepth, error) {
		return bus.InspectBroker(cfg.AMQP.URL, bus.BrokerQueues(cfg, arches...))
	}}
	s.AddMetrics(func() []Metric {
		qs, err := c.Get()
		if err != nil {
			return nil
		}
		ready := Metric{Name: "taskotron_queue_ready", Type: Gauge, Help: "Messages ready in an AMQP queue (unacked ones are not visible over AMQP)."}
		cons := Metric{Name: "taskotron_queue_consumers", Type: Gauge, Help: "Consumers of an AMQP queue."}
		for _, q := range qs {
			if !q.Exists {
				continue
			}
			l := Labels("queue", q.Name, "kind", q.Kind)
			ready.Samples = append(ready.Samples, Sample{l, float64(q.Ready)})
			cons.Samples = append(cons.Samples, Sample{l, float64(q.Consumers)})
		}
		return []Metric{ready, cons}
	})
	s.AddSection("queues", func() any {
		qs, err := c.Get()
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		return map[string]any{"queues": qs, "unseen": Unseen}
	})
}

// AddDiskQueue adds the in-process on-disk queue's lengths (cheap: counted in memory).
func AddDiskQueue(s *Server, q *bus.DiskQueue) {
	s.AddMetrics(func() []Metric {
		pending, inflight := q.Len()
		return []Metric{{Name: "taskotron_queue_jobs", Type: Gauge, Help: "Jobs in the on-disk job queue: waiting, or taken by a worker and not acked.",
			Samples: []Sample{{Labels("state", "waiting"), float64(pending)}, {Labels("state", "taken"), float64(inflight)}}}}
	})
	s.AddSection("queue", func() any {
		pending, inflight := q.Len()
		return map[string]int{"waiting": pending, "taken": inflight}
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
