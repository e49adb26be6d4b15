package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/redact"
	"github.com/taskotron-go/taskotron/status"
)

// Options are what the command line adds to the configuration.
type Options struct {
	// Listen is where the page and the status endpoints are served; empty
	// means notify.listen.
	Listen string
	// Status, when set, is served there too (and gets the role's
	// providers); otherwise the role has a status of its own.
	Status *status.Server
	// Poll is how often the outbox is looked at without being told; 0: 1s.
	Poll time.Duration
}

// keep is how long sent notifications are remembered, so that an event
// delivered again long after repeats nothing.
const keep = 7 * 24 * time.Hour

// Service is the notifier role: result events from its queue, matched
// and recorded, then delivered by mail and webhook; its page shows the
// subscriptions and their delivery state.
type Service struct {
	cfg   config.Notify
	log   *slog.Logger
	store *Store
	cons  *consumer
	del   *deliverer
	ln    net.Listener
	http  *http.Server
	base  string
	dsn   string
	// public is base as people reach it: the links in mails.
	public string
	limits Limits

	confirmations, unsubscribes atomic.Int64
}

// Subscriptions made on the page wait this long to be confirmed, at most
// this many per address and in all: the form mails a stranger's address
// at most a few times, and fills no disk.
const (
	confirmTTL           = 48 * time.Hour
	maxPendingPerAddress = 5
	maxPending           = 1000
)

// New opens the store, checks the mail settings and listens; Run does the
// work.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) (*Service, error) {
	cfg = cfg.Resolved()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.AMQP.URL == "" {
		return nil, errors.New("notify needs the broker ResultsDB publishes to, in amqp.url (or TASKOTRON_AMQP_URL), and resultsdb.publish on the server")
	}
	n := cfg.Notify
	if n.DigestWindow < 0 || n.RetryMin <= 0 || n.RetryMax < n.RetryMin || n.WebhookTimeout <= 0 {
		return nil, fmt.Errorf("notify: digest_window must be 0 or more, retry_min above 0 and at most retry_max, webhook_timeout above 0")
	}
	public := strings.TrimSuffix(n.PublicURL, "/")
	if public != "" {
		u, err := url.Parse(public)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("notify.public_url %q: want http(s)://host[/path], no credentials, query or fragment", redact.URL(n.PublicURL))
		}
	}
	if n.Queue == "" || n.Topic == "" {
		return nil, errors.New("notify.queue and notify.topic must be set")
	}
	mailer, err := newSMTP(SMTPOptions{Addr: n.SMTPAddr, User: n.SMTPUser, Password: n.SMTPPassword, TLS: n.SMTPTLS, From: n.From})
	if err != nil {
		return nil, err
	}
	if o.Listen == "" {
		o.Listen = n.Listen
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	store, err := Open(ctx, n.DB)
	if err != nil {
		return nil, fmt.Errorf("notify.db: %w", err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("notify: listen on %s: %w", o.Listen, err)
	}
	api := n.ResultsURL
	if api == "" {
		api = cfg.ResultsDB.URL
	}
	if api == "" {
		api = "http://" + cfg.ResultsDB.Listen + "/api/v2.0"
	}
	s := &Service{cfg: n, log: log, store: store, ln: ln, base: "http://" + ln.Addr().String(), dsn: n.DB, public: public}
	if s.public == "" {
		s.public = s.base
	}
	s.limits = Limits{TTL: confirmTTL, PerAddress: maxPendingPerAddress, Total: maxPending}
	s.del = &deliverer{store: store, log: log, mail: mailer, public: s.public, http: webhookClient(n.WebhookTimeout),
		regress: newResultsDB(api, log), window: n.DigestWindow, retryMin: n.RetryMin, retryMax: n.RetryMax, poll: o.Poll,
		wake: make(chan struct{}, 1), checkWake: make(chan struct{}, 1), sem: make(chan struct{}, 16), busy: map[string]bool{}}
	s.cons = &consumer{url: cfg.AMQP.URL, exchange: cfg.AMQP.Exchange, queue: n.Queue, topic: n.Topic, prefetch: 32, log: log, handle: s.handle}
	if s.cons.exchange == "" {
		s.cons.exchange = "amq.topic"
	}
	mux := http.NewServeMux()
	ops := o.Status
	if ops == nil {
		ops = status.New("notify")
	}
	s.AddStatus(ops)
	ops.Mount(mux)
	s.mountPages(mux)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	return s, nil
}

// URL is where the page is served.
func (s *Service) URL() string { return s.base }

// handle records what one result event owes; only then is it acked.
func (s *Service) handle(ctx context.Context, body []byte) error {
	r, err := ParseEvent(body)
	if err != nil {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	subs, err := s.store.list(ctx, false)
	if err != nil {
		return err
	}
	var match []Subscription
	check := false
	for _, sub := range subs {
		if sub.Matches(r) {
			match = append(match, sub)
			check = check || sub.Regressions
		}
	}
	n, err := s.store.Record(ctx, r, match)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Debug("notify: result matched", "result", r.ID, "item", r.Item, "testcase", r.Testcase, "outcome", r.Outcome, "notifications", n)
		s.del.poke(s.del.wake)
		if check {
			s.del.poke(s.del.checkWake)
		}
	}
	return nil
}

// Run consumes and delivers until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	work, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{}, 4)
	go func() { s.cons.run(work); done <- struct{}{} }()
	go func() { s.del.run(work); done <- struct{}{} }()
	go func() { s.del.checkLoop(work); done <- struct{}{} }()
	go func() { s.prune(work); done <- struct{}{} }()
	s.log.Info("notify serving", "page", s.base+"/", "db", redact.URL(s.dsn), "smtp", s.cfg.SMTPAddr, "digest_window", s.cfg.DigestWindow)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stop()
	for range 4 {
		<-done
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.http.Shutdown(shutdown)
	s.store.Close()
	s.log.Info("notify stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Service) prune(ctx context.Context) {
	for {
		if n, err := s.store.Prune(ctx, time.Now().Add(-keep)); err != nil && ctx.Err() == nil {
			s.log.Error("notify: pruning old notifications", "err", err)
		} else if n > 0 {
			s.log.Info("notify: pruned old notifications", "count", n)
		}
		if n, err := s.store.PruneUnconfirmed(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Error("notify: pruning unconfirmed subscriptions", "err", err)
		} else if n > 0 {
			s.log.Info("notify: pruned unconfirmed subscriptions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// Close releases a Service whose Run was never called.
func (s *Service) Close() {
	s.ln.Close()
	s.store.Close()
}

// AddStatus adds the notifier's health check (the broker), its metrics
// and its /status section.
func (s *Service) AddStatus(srv *status.Server) {
	srv.AddCheck(status.Check{Name: "amqp consumer", Grace: 10 * time.Second, Probe: func() error {
		if !s.cons.connected.Load() {
			return fmt.Errorf("not connected to the broker (queue %s); reconnecting", s.cons.queue)
		}
		return nil
	}})
	counts := status.Cache[map[string]int]{TTL: 2 * time.Second, Load: func() (map[string]int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.store.Counts(ctx)
	}}
	srv.AddMetrics(func() []status.Metric {
		out := []status.Metric{
			status.One("taskotron_notify_events_total", status.Counter, "Result events consumed and acked.", float64(s.cons.consumed.Load())),
			status.One("taskotron_notify_events_malformed_total", status.Counter, "Result events set aside as unreadable.", float64(s.cons.malformed.Load())),
			status.One("taskotron_notify_amqp_connected", status.Gauge, "1 while the notifier is connected to the broker.", status.Flag(s.cons.connected.Load())),
			status.One("taskotron_notify_digests_sent_total", status.Counter, "Email digests handed to the mail server.", float64(s.del.mails.Load())),
			status.One("taskotron_notify_webhooks_sent_total", status.Counter, "Webhook requests answered 2xx.", float64(s.del.webhooks.Load())),
			status.One("taskotron_notify_confirmations_sent_total", status.Counter, "Confirmation requests mailed for subscriptions made on the page.", float64(s.confirmations.Load())),
			status.One("taskotron_notify_unsubscribed_total", status.Counter, "Subscriptions stopped by their unsubscribe link.", float64(s.unsubscribes.Load())),
			status.One("taskotron_notify_delivery_failures_total", status.Counter, "Deliveries that failed and back off.", float64(s.del.failures.Load())),
		}
		if c, err := counts.Get(); err == nil {
			m := status.Metric{Name: "taskotron_notify_notifications", Type: status.Gauge, Help: "Notifications in the outbox, by state."}
			for _, st := range status.SortedKeys(c) {
				m.Samples = append(m.Samples, status.Sample{Labels: status.Labels("state", st), Value: float64(c[st])})
			}
			out = append(out, m)
		}
		return out
	})
	srv.AddSection("notify", func() any {
		c, _ := counts.Get()
		return map[string]any{"queue": s.cons.queue, "connected": s.cons.connected.Load(), "outbox": c,
			"events": s.cons.consumed.Load(), "digests_sent": s.del.mails.Load(), "webhooks_sent": s.del.webhooks.Load()}
	})
}
