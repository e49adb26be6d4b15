package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/taskotron-go/taskotron/resultsdb"
)

func init() {
	register(command{
		name:    "resultsdb",
		summary: "serve the ResultsDB API v2.0 and its web pages (resultsdb serve)",
		run:     runResultsDB,
	})
}

func runResultsDB(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return usagef("usage: taskotron resultsdb serve [--listen ADDR] [--db sqlite:PATH|postgres://…] [--base-url URL] [--token TOKEN] [--publish]")
	}
	cfg := g.cfg.ResultsDB
	fs := newFlags("resultsdb serve")
	listen := fs.String("listen", cfg.Listen, "address to listen on")
	dbDSN := fs.String("db", cfg.DB, "database: sqlite:PATH or postgres://… (default sqlite in data_dir)")
	baseURL := fs.String("base-url", cfg.BaseURL, "public URL of this server for links, like https://resultsdb.example.org (resultsdb.base_url; default the URL each request came to, from Host and X-Forwarded-Host/-Scheme/-Proto)")
	token := fs.String("token", cfg.Token, "bearer token required for writes (default none: writes open)")
	artifacts := fs.String("artifacts-url", g.cfg.Runner.ArtifactsURL, "public URL of the artifacts tree, linked from group pages")
	publish := fs.Bool("publish", cfg.Publish, "publish resultsdb.result.new to the AMQP broker in amqp.url (resultsdb.publish)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *baseURL != "" {
		u, err := url.Parse(*baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return usagef("--base-url %q: want http(s)://host[:port][/prefix]", *baseURL)
		}
	}
	if *dbDSN == "" {
		*dbDSN = "sqlite:" + g.cfg.Path("resultsdb.sqlite")
	}
	if *publish && g.cfg.AMQP.URL == "" {
		return usagef("--publish needs amqp.url (or TASKOTRON_AMQP_URL)")
	}

	store, err := resultsdb.Open(ctx, *dbDSN)
	if errors.Is(err, resultsdb.ErrBadDSN) {
		return usagef("--db: %v", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	// Published messages have no request to take a URL from.
	eventBase := *baseURL
	if eventBase == "" {
		eventBase = "http://" + ln.Addr().String()
	}
	opts := resultsdb.Options{
		BaseURL:            *baseURL,
		Token:              *token,
		AdditionalOutcomes: cfg.AdditionalOutcomes,
		Log:                g.log,
		ArtifactsURL:       *artifacts,
		Events:             *publish,
	}
	srv := &http.Server{
		Handler:           resultsdb.NewServer(store, opts),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}

	errc := make(chan error, 2)
	// The publisher outlives the server by a few seconds, to send what the
	// last requests queued, and stops before the store closes under it.
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	var pub *resultsdb.Publisher
	defer func() {
		if pub != nil {
			drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := pub.Drain(drain); err != nil {
				g.log.Warn("result events left in the outbox for the next start", "err", err)
			}
			cancel()
		}
		stopPub()
		<-pubDone
	}()
	if *publish {
		pub = resultsdb.NewPublisher(store, resultsdb.PublisherOptions{
			URL: g.cfg.AMQP.URL, Exchange: g.cfg.AMQP.Exchange, BaseURL: eventBase, Log: g.log,
		})
		go func() { defer close(pubDone); errc <- pub.Run(pubCtx) }()
	} else {
		close(pubDone)
	}
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("resultsdb serving", "api", "http://"+ln.Addr().String()+resultsdb.APIPrefix, "base_url", *baseURL, "db", redactDSN(*dbDSN))

	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	g.log.Info("resultsdb stopped")
	return err
}

// redactDSN keeps a password out of the log.
func redactDSN(dsn string) string { return resultsdb.Redact(dsn) }
