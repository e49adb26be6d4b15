package main

import (
	"context"
	"errors"
	"net/url"

	"github.com/taskotron-go/taskotron/resultsdb"
	"github.com/taskotron-go/taskotron/server"
)

func init() {
	register(command{
		name:    "resultsdb",
		summary: "serve the ResultsDB API v2.0 and its web pages (resultsdb serve); origins' tokens (resultsdb token add|revoke|list); send a KCIDB submission (resultsdb submit FILE)",
		run:     runResultsDB,
	})
}

const resultsDBUsage = "usage: taskotron resultsdb serve [--listen ADDR] [--db sqlite:PATH|postgres://…] [--base-url URL] [--token TOKEN] [--publish] [--cpu-profile FILE]" +
	" | resultsdb token add ORIGIN|revoke ORIGIN [TOKEN-ID]|list | resultsdb submit [--url API] [--token TOKEN] FILE|-"

func runResultsDB(ctx context.Context, g *globals, args []string) error {
	if len(args) > 0 && args[0] == "token" {
		return runResultsDBToken(ctx, g, args[1:])
	}
	if len(args) > 0 && args[0] == "submit" {
		return runResultsDBSubmit(ctx, g, args[1:])
	}
	if len(args) == 0 || args[0] != "serve" {
		return usagef(resultsDBUsage)
	}
	cfg := g.cfg.ResultsDB
	fs := newFlags("resultsdb serve")
	listen := fs.String("listen", cfg.Listen, "address to listen on")
	dbDSN := fs.String("db", cfg.DB, "database: sqlite:PATH or postgres://… (default sqlite in data_dir)")
	baseURL := fs.String("base-url", cfg.BaseURL, "public URL of this server for links, like https://resultsdb.example.org (resultsdb.base_url; default the URL each request came to, from Host and X-Forwarded-Host/-Scheme/-Proto)")
	token := fs.String("token", cfg.Token, "bearer token required for writes (default none: writes open)")
	artifacts := fs.String("artifacts-url", g.cfg.Runner.ArtifactsURL, "public URL of the artifacts tree, linked from group pages")
	publish := fs.Bool("publish", cfg.Publish, "publish resultsdb.result.new to the AMQP broker in amqp.url (resultsdb.publish)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the server to this file, from start until it stops (go tool pprof)")
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
	srv, err := server.New(ctx, g.cfg, g.log, server.Options{
		Listen: *listen, DB: *dbDSN, BaseURL: *baseURL, Token: *token, Publish: *publish, ArtifactsURL: *artifacts,
		// Workers upload each run's artifacts here (execdb.upload_artifacts).
		ArtifactsDir: g.cfg.Resolved().Runner.ArtifactsDir,
	})
	switch {
	case errors.Is(err, resultsdb.ErrBadDSN):
		return usagef("--db: %v", err)
	case err != nil && *publish && g.cfg.AMQP.URL == "":
		return usagef("--publish needs amqp.url (or TASKOTRON_AMQP_URL)")
	case err != nil:
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	return srv.Run(ctx)
}
