// Package server is the central server role: the ResultsDB API v2.0 and its
// pages over a store (SQLite embedded, PostgreSQL in production), the result
// events published through the store's outbox, the artifacts tree (what
// workers upload, or what this machine's runs write), the executions
// (execdb: every job's record, the queue, live logs, their pages and
// metrics, pruned after execdb.retention), the labs' request queue (labs),
// and the status endpoints, all on one port. It may import resultsdb,
// execdb, labs, status, redact and config.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/labs"
	"github.com/taskotron-go/taskotron/redact"
	"github.com/taskotron-go/taskotron/resultsdb"
	"github.com/taskotron-go/taskotron/status"
)

// Options are what the command line (or `up`) adds to the configuration.
type Options struct {
	// Listen is the address to listen on; empty means resultsdb.listen.
	Listen string
	// DB is the store's DSN; empty means resultsdb.db.
	DB string
	// BaseURL is the public URL links are built from; empty means the URL
	// each request came to (Host, X-Forwarded-Host/-Scheme/-Proto), and
	// http://<the address listened on> for published events.
	BaseURL string
	// Token, when set, is required as a bearer token for writes.
	Token string
	// Publish sends resultsdb.result.new for every new result to amqp.url.
	Publish bool
	// ArtifactsURL is linked from group pages.
	ArtifactsURL string
	// ArtifactsDir, when set, is served below /artifacts/.
	ArtifactsDir string
	// Status, when set, is served on the same port (`up`); otherwise the
	// server has a status of its own there.
	Status *status.Server
}

// Server is the central server role.
type Server struct {
	log       *slog.Logger
	store     resultsdb.Store
	execs     *execdb.Store
	hub       *labs.Hub
	flush     time.Duration
	retention time.Duration
	artifacts string
	ln        net.Listener
	http      *http.Server
	pub       *resultsdb.Publisher
	base      string
	// public is the configured public URL ("" follows each request).
	public string
	dsn    string
}

// New opens the store and listens; Run serves. A DSN that cannot be read is
// an error wrapping resultsdb.ErrBadDSN.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) (*Server, error) {
	cfg = cfg.Resolved()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Listen == "" {
		o.Listen = cfg.ResultsDB.Listen
	}
	if o.DB == "" {
		o.DB = cfg.ResultsDB.DB
	}
	if o.Publish && cfg.AMQP.URL == "" {
		return nil, errors.New("resultsdb.publish needs a broker in amqp.url (or TASKOTRON_AMQP_URL)")
	}
	if cfg.ResultsDB.Origin != "" {
		if err := resultsdb.CheckOrigin(cfg.ResultsDB.Origin); err != nil {
			return nil, fmt.Errorf("resultsdb.origin: %w", err)
		}
	}
	store, err := resultsdb.Open(ctx, o.DB)
	if err != nil {
		return nil, err
	}
	execs, err := execdb.Open(ctx, cfg.ExecDB.DB)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("execdb.db: %w", err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		store.Close()
		execs.Close()
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	s := &Server{log: log, store: store, execs: execs, retention: cfg.ExecDB.Retention, artifacts: o.ArtifactsDir,
		ln: ln, base: "http://" + ln.Addr().String(), dsn: o.DB, flush: cfg.Reporter.FlushInterval}
	// Labs' results go to this server's ResultsDB unless resultsdb.url
	// names another.
	s.hub, err = labs.HubFromConfig(ctx, cfg, log, labs.ServerParts{Execs: execs, ArtifactsDir: o.ArtifactsDir,
		ResultsDBURL: s.base + resultsdb.APIPrefix, ResultsDBToken: o.Token})
	if err != nil {
		ln.Close()
		store.Close()
		execs.Close()
		return nil, err
	}
	s.public = o.BaseURL
	public := o.BaseURL
	if public == "" {
		// Published messages have no request to take a URL from.
		public = s.base
	}
	mux := http.NewServeMux()
	ops := o.Status
	if ops == nil {
		ops = status.New("resultsdb")
	}
	ops.Mount(mux)
	ops.Register(execdb.NewMetrics(execs))
	if o.ArtifactsDir != "" {
		mux.Handle("/artifacts/", http.StripPrefix("/artifacts/", http.FileServer(http.Dir(o.ArtifactsDir))))
	}
	execdb.NewHandler(execs, execdb.Options{Token: cfg.ExecDB.Token, Log: log, ArtifactsDir: o.ArtifactsDir, MaxArtifacts: cfg.ExecDB.MaxArtifacts,
		AuthorizeLog: s.hub.AuthorizeLog, Results: executionResults(store), BaseURL: o.BaseURL}).Mount(mux)
	s.hub.Mount(mux)
	mux.Handle("/", resultsdb.NewServer(store, resultsdb.Options{
		BaseURL:            o.BaseURL,
		Token:              o.Token,
		AdditionalOutcomes: cfg.ResultsDB.AdditionalOutcomes,
		ArtifactsURL:       o.ArtifactsURL,
		Log:                log,
		Events:             o.Publish,
		Origins:            true,
		Origin:             cfg.ResultsDB.Origin,
	}))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if o.Publish {
		s.pub = resultsdb.NewPublisher(store, resultsdb.PublisherOptions{
			URL: cfg.AMQP.URL, Exchange: cfg.AMQP.Exchange, BaseURL: public, Log: log,
		})
	}
	return s, nil
}

// URL is where the server listens, http://host:port; the API is below
// URL()+resultsdb.APIPrefix.
func (s *Server) URL() string { return s.base }

// Run serves until ctx ends, then stops taking requests, gives the
// publisher a few seconds to send what the last results queued (the rest
// stays in the outbox for the next start), and closes the store.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	if s.pub != nil {
		// It sends what the outbox holds, also what an earlier run left.
		go func() {
			defer close(pubDone)
			if err := s.pub.Run(pubCtx); err != nil {
				errc <- fmt.Errorf("result events publisher: %w", err)
			}
		}()
	} else {
		close(pubDone)
	}
	go func() { errc <- s.http.Serve(s.ln) }()
	pruneCtx, stopPrune := context.WithCancel(ctx)
	defer stopPrune()
	if s.retention > 0 {
		go s.prune(pruneCtx)
	}
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); s.hub.Run(pruneCtx, s.flush) }()
	s.log.Info("resultsdb serving", "api", s.base+resultsdb.APIPrefix, "pages", s.base+"/", "base_url", s.public, "db", redact.URL(s.dsn))

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e := s.http.Shutdown(shutdown); e != nil && err == nil {
		err = e
	}
	if s.pub != nil {
		drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if e := s.pub.Drain(drain); e != nil {
			s.log.Warn("result events left in the outbox for the next start", "err", e)
		}
		cancel()
	}
	stopPub()
	<-pubDone
	stopPrune()
	<-hubDone
	s.hub.Close()
	s.store.Close()
	s.execs.Close()
	s.log.Info("resultsdb stopped")
	return err
}

// prune deletes, every hour, the executions (with their logs and
// artifacts) that ended longer than execdb.retention ago.
func (s *Server) prune(ctx context.Context) {
	for {
		gone, err := s.execs.Prune(ctx, time.Now().Add(-s.retention))
		if err != nil && ctx.Err() == nil {
			s.log.Error("pruning old executions", "err", err)
		}
		for _, uuid := range gone {
			if s.artifacts != "" && !strings.ContainsAny(uuid, "/\\") && uuid != ".." {
				if err := os.RemoveAll(filepath.Join(s.artifacts, uuid)); err != nil {
					s.log.Error("removing a pruned execution's artifacts", "uuid", uuid, "err", err)
				}
			}
		}
		if len(gone) > 0 {
			s.log.Info("pruned old executions", "count", len(gone), "older_than", s.retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// executionResults lists the results of an execution's group, for its
// page.
func executionResults(store resultsdb.Store) func(ctx context.Context, uuid string) ([]execdb.ResultSummary, error) {
	return func(ctx context.Context, uuid string) ([]execdb.ResultSummary, error) {
		rs, err := store.Results(ctx, resultsdb.ResultQuery{Groups: []string{uuid}, Limit: 500})
		if err != nil {
			return nil, err
		}
		out := make([]execdb.ResultSummary, 0, len(rs))
		for _, r := range rs {
			sum := execdb.ResultSummary{ID: r.ID, Testcase: r.Testcase.Name, Outcome: r.Outcome}
			if r.Note != nil {
				sum.Note = *r.Note
			}
			if r.RefURL != nil {
				sum.RefURL = *r.RefURL
			}
			for _, d := range r.Data {
				switch d.Key {
				case "item":
					sum.Item = d.Value
				case "arch":
					sum.Arch = d.Value
				}
			}
			out = append(out, sum)
		}
		return out, nil
	}
}

// Close releases a Server whose Run was never called.
func (s *Server) Close() {
	s.ln.Close()
	s.hub.Close()
	s.store.Close()
	s.execs.Close()
}
