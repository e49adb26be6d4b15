package status

import (
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/reporter"
)

// DepthTTL is how long queue depths read from the broker or the spool
// folder are reused: a scrape every second costs one look every DepthTTL.
var DepthTTL = 5 * time.Second

// AddAMQPCounters exports the process's AMQP transport counters (expvar
// taskotron_amqp): delivered, dead-lettered, reconnects, watchdog stalls,
// acks and ack frames, jobs published.
func AddAMQPCounters(s *Server) {
	if !s.Once("amqp counters") {
		return
	}
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
		for _, k := range SortedKeys(c) {
			h := help[k]
			if h == "" {
				h = "AMQP transport counter " + k + "."
			}
			out = append(out, One("taskotron_amqp_"+k+"_total", Counter, h, float64(c[k])))
		}
		return out
	})
}

// AddSpool adds the reporter spool's counts, read at most every DepthTTL.
func AddSpool(s *Server, dir string) {
	if !s.Once("spool " + dir) {
		return
	}
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
	if !s.Once("broker queues") {
		return
	}
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
	if !s.Once("disk queue") {
		return
	}
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

// Flag is a boolean as a gauge's value: 1 or 0.
func Flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
