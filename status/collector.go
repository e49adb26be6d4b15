package status

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The Prometheus client library writes /metrics. Roles add collectors of
// their own (histograms, with Register) and simple providers (AddMetrics:
// a list of families read at each scrape), which providerCollector turns
// into the library's const metrics.

// Register adds a Prometheus collector (a histogram of queue waits, say).
// A collector already registered is kept once.
func (s *Server) Register(c prometheus.Collector) {
	if err := s.registry().Register(c); err != nil {
		if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
			panic(err) // two collectors of the same name: a programming error
		}
	}
}

func (s *Server) registry() *prometheus.Registry {
	s.regOnce.Do(func() {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(providerCollector{s})
	})
	return s.reg
}

// metricsHandler serves the registry in the text format.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// providerCollector collects the families of the AddMetrics providers, and
// the role's own up and start time. It describes nothing in advance (an
// unchecked collector): what the providers report varies by role.
type providerCollector struct{ s *Server }

func (providerCollector) Describe(chan<- *prometheus.Desc) {}

func (p providerCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.s
	healthy := 1.0
	if s.Health() != nil {
		healthy = 0
	}
	all := []Metric{
		{Name: "taskotron_up", Help: "1 while the role can do its job (/healthz is 200), else 0.", Type: Gauge,
			Samples: []Sample{{Labels: Labels("role", s.role), Value: healthy}}},
		{Name: "taskotron_start_time_seconds", Help: "When the role started, in seconds since the epoch.", Type: Gauge,
			Samples: []Sample{{Labels: Labels("role", s.role), Value: float64(s.started.UnixNano()) / 1e9}}},
	}
	_, metrics, _ := s.providers()
	for _, f := range metrics {
		all = append(all, f()...)
	}
	// Families of one name (from two providers) are one family.
	byName := map[string]*Metric{}
	var order []string
	for i := range all {
		m := all[i]
		m.Name = sanitize(m.Name, true)
		if prev, ok := byName[m.Name]; ok {
			prev.Samples = append(prev.Samples, m.Samples...)
			continue
		}
		byName[m.Name] = &m
		order = append(order, m.Name)
	}
	sort.Strings(order)
	for _, name := range order {
		m := byName[name]
		typ := prometheus.GaugeValue
		if m.Type == Counter {
			typ = prometheus.CounterValue
		}
		seen := map[string]bool{}
		for _, smp := range m.Samples {
			names := make([]string, len(smp.Labels))
			values := make([]string, len(smp.Labels))
			key := ""
			for i, l := range smp.Labels {
				names[i], values[i] = sanitize(l.Name, false), l.Value
				key += l.Name + "\x00" + l.Value + "\x00"
			}
			if seen[key] {
				continue // the same series twice: the first one counts
			}
			seen[key] = true
			desc := prometheus.NewDesc(name, m.Help, names, nil)
			if metric, err := prometheus.NewConstMetric(desc, typ, smp.Value, values...); err == nil {
				ch <- metric
			}
		}
	}
}
