// Package status is what the long-running roles show ops over HTTP:
// /healthz (can the role do its job), /metrics (Prometheus text format),
// /status (JSON for people and scripts), /debug/vars (expvar), and the
// `taskotron queue` look at everything waiting. A Server is built from small
// providers (checks, metrics, status sections): each role adds its own
// (trigger.Service, worker.Service, server.Server), and this package adds
// those of the transports they share (AMQP counters, queue depths, the
// on-disk queue, the reporter's spool). It knows no role: it imports bus,
// config and reporter, and no role imports it but to add providers.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one thing a role needs to do its job. Probe returns nil when it
// is fine; the role is unhealthy once Probe has failed for longer than Grace
// (a broker restart of a few seconds is not an outage).
type Check struct {
	Name  string
	Grace time.Duration
	Probe func() error
}

// Server serves a role's health, metrics and status. Add providers before
// serving; the handlers call them on every request.
type Server struct {
	role    string
	started time.Time
	// Interval is how often checks are probed in the background by Run, so
	// that an outage is timed even when nobody asks (default 1s).
	Interval time.Duration

	pmu      sync.RWMutex // providers may be added while serving (up adds them as its roles start)
	checks   []Check
	metrics  []func() []Metric
	sections []section
	added    map[string]bool // providers added under a key, once

	regOnce sync.Once
	reg     *prometheus.Registry

	mu      sync.Mutex
	failing map[string]failure
}

type section struct {
	name string
	get  func() any
}

type failure struct {
	since time.Time
	err   error
}

// New makes a Server for a role (trigger, worker, up).
func New(role string) *Server {
	return &Server{role: role, started: time.Now(), Interval: time.Second, failing: map[string]failure{}}
}

// AddCheck adds a health check.
func (s *Server) AddCheck(c Check) {
	s.pmu.Lock()
	s.checks = append(s.checks, c)
	s.pmu.Unlock()
}

func (s *Server) providers() ([]Check, []func() []Metric, []section) {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.checks, s.metrics, s.sections
}

// AddMetrics adds a source of metrics for /metrics.
func (s *Server) AddMetrics(f func() []Metric) {
	s.pmu.Lock()
	s.metrics = append(s.metrics, f)
	s.pmu.Unlock()
}

// Once tells whether the providers named key are to be added now: true
// the first time. Roles composed in one process (`up`) share a queue and a
// spool, whose metrics must appear once.
func (s *Server) Once(key string) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.added == nil {
		s.added = map[string]bool{}
	}
	if s.added[key] {
		return false
	}
	s.added[key] = true
	return true
}

// AddSection adds a named part of /status.
func (s *Server) AddSection(name string, get func() any) {
	s.pmu.Lock()
	s.sections = append(s.sections, section{name, get})
	s.pmu.Unlock()
}

// probe runs every check once and records since when each one fails.
func (s *Server) probe(now time.Time) {
	checks, _, _ := s.providers()
	for _, c := range checks {
		err := c.Probe()
		s.mu.Lock()
		if err == nil {
			delete(s.failing, c.Name)
		} else if f, ok := s.failing[c.Name]; ok {
			f.err = err
			s.failing[c.Name] = f
		} else {
			s.failing[c.Name] = failure{since: now, err: err}
		}
		s.mu.Unlock()
	}
}

// Health probes the checks and says why the role cannot do its job, or
// nil when it can.
func (s *Server) Health() error {
	now := time.Now()
	s.probe(now)
	checks, _, _ := s.providers()
	s.mu.Lock()
	defer s.mu.Unlock()
	var reasons []string
	for _, c := range checks {
		f, ok := s.failing[c.Name]
		if ok && now.Sub(f.since) >= c.Grace {
			reasons = append(reasons, fmt.Sprintf("%s: %v (for %s)", c.Name, f.err, now.Sub(f.since).Round(time.Second)))
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return errors.New(strings.Join(reasons, "; "))
}

// Run probes the checks every Interval until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.probe(now)
		}
	}
}

// Mount adds the endpoints to mux.
func (s *Server) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.Handle("GET /debug/vars", expvar.Handler())
}

// Handler is a mux with the endpoints alone.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Mount(mux)
	return mux
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.Health(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(strings.Fields(err.Error()), " "))
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler().ServeHTTP(w, r)
}

// Document is the /status JSON.
type Document struct {
	Role    string         `json:"role"`
	Build   Build          `json:"build"`
	Started time.Time      `json:"started"`
	Uptime  string         `json:"uptime"`
	Healthy bool           `json:"healthy"`
	Problem string         `json:"problem,omitempty"`
	Parts   map[string]any `json:"parts"`
}

// Build is what the binary knows about itself.
type Build struct {
	Version  string `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go,omitempty"`
}

// BuildInfo reads the version and VCS stamp the Go toolchain put in the binary.
func BuildInfo() Build {
	var b Build
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.Go = bi.Main.Version, bi.GoVersion
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			b.Revision = kv.Value
		case "vcs.time":
			b.Time = kv.Value
		case "vcs.modified":
			b.Modified = kv.Value == "true"
		}
	}
	return b
}

// Snapshot is the /status document now.
func (s *Server) Snapshot() Document {
	d := Document{Role: s.role, Build: BuildInfo(), Started: s.started.UTC(),
		Uptime: time.Since(s.started).Round(time.Second).String(), Healthy: true, Parts: map[string]any{}}
	if err := s.Health(); err != nil {
		d.Healthy, d.Problem = false, err.Error()
	}
	_, _, sections := s.providers()
	for _, sec := range sections {
		d.Parts[sec.name] = sec.get()
	}
	return d
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Snapshot())
}

// Listen serves the endpoints on addr until ctx ends, probing the checks in
// the background; it returns the address it listens on (addr may end in :0).
func (s *Server) Listen(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("status listener on %s (status.listen): %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.Run(ctx)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}

// Cache keeps a value that is dear to read (a queue depth from the broker)
// for TTL, so that scrapes do not hit its source more often than that.
type Cache[T any] struct {
	TTL  time.Duration
	Load func() (T, error)

	mu  sync.Mutex
	at  time.Time
	val T
	err error
}

// Get returns the cached value, loading it when older than TTL. A load
// runs under the lock: concurrent scrapes wait for one load, not each its own.
func (c *Cache[T]) Get() (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.TTL {
		return c.val, c.err
	}
	c.val, c.err = c.Load()
	c.at = time.Now()
	return c.val, c.err
}

// SortedKeys orders a map's keys for stable output.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
