package execdb

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what ops graph of the executions: how long jobs wait in the
// queue before their first run and how long runs take, per task, and how
// many executions are in each state. It is a Prometheus collector.
type Metrics struct {
	store     *Store
	queueWait *prometheus.HistogramVec
	runTime   *prometheus.HistogramVec
	byState   *prometheus.Desc

	mu     sync.Mutex
	counts map[string]int64
	read   time.Time
}

// NewMetrics makes the store's metrics and has the store feed them.
func NewMetrics(s *Store) *Metrics {
	m := &Metrics{
		store: s,
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "taskotron_execution_queue_wait_seconds", Help: "Time from a job queued to its first run, by task.",
			Buckets: []float64{0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600},
		}, []string{"task"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "taskotron_execution_run_seconds", Help: "Time one attempt ran, from its start to its end, by task and how it ended.",
			Buckets: []float64{0.1, 0.5, 2, 10, 30, 60, 300, 900, 1800, 3600},
		}, []string{"task", "state"}),
		byState: prometheus.NewDesc("taskotron_executions", "Executions the central server knows, by state.", []string{"state"}, nil),
	}
	s.metrics = m
	return m
}

func (m *Metrics) observe(o observation) {
	if o.queued {
		m.queueWait.WithLabelValues(o.task).Observe(o.wait.Seconds())
		return
	}
	m.runTime.WithLabelValues(o.task, o.state).Observe(o.run.Seconds())
}

// Describe is prometheus.Collector's.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.queueWait.Describe(ch)
	m.runTime.Describe(ch)
	ch <- m.byState
}

// Collect is prometheus.Collector's; the counts by state are read from the
// database at most every 5 s.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.queueWait.Collect(ch)
	m.runTime.Collect(ch)
	m.mu.Lock()
	if time.Since(m.read) > 5*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if c, err := m.store.Count(ctx); err == nil {
			m.counts, m.read = c, time.Now()
		}
		cancel()
	}
	counts := m.counts
	m.mu.Unlock()
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.byState, prometheus.GaugeValue, float64(n), st)
	}
}
