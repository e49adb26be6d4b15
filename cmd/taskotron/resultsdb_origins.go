package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/resultsdb"
)

const tokenUsage = "usage: taskotron resultsdb token add ORIGIN | token revoke ORIGIN [TOKEN-ID] | token list   [--db DSN]"

// runResultsDBToken manages the origins' tokens in the server's database
// directly, as `lab token` does: only who can reach the database can.
func runResultsDBToken(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("resultsdb token")
	dbDSN := fs.String("db", g.cfg.Resolved().ResultsDB.DB, "the server's database: sqlite:PATH or postgres://… (resultsdb.db)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usagef(tokenUsage)
	}
	cmd, rest := rest[0], rest[1:]
	switch {
	case cmd == "add" && len(rest) == 1, cmd == "revoke" && (len(rest) == 1 || len(rest) == 2), cmd == "list" && len(rest) == 0:
	case cmd == "add" || cmd == "revoke" || cmd == "list":
		return usagef(tokenUsage)
	default:
		return usagef("unknown token command %q: want add, revoke or list", cmd)
	}
	if len(rest) > 0 {
		if err := resultsdb.CheckOrigin(rest[0]); err != nil {
			return usagef("%v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := resultsdb.Open(ctx, *dbDSN)
	if errors.Is(err, resultsdb.ErrBadDSN) {
		return usagef("--db: %v", err)
	}
	if err != nil {
		return fmt.Errorf("resultsdb.db: %w", err)
	}
	defer store.Close()
	switch cmd {
	case "add":
		t, secret, err := store.AddToken(ctx, rest[0])
		if err != nil {
			return err
		}
		// The only time it is shown: the database keeps a hash of it.
		fmt.Fprintln(g.stdout, secret)
		fmt.Fprintf(g.stderr, "token %s for origin %s: keep it, it is not shown again (send it as Authorization: Bearer …, or taskotron resultsdb submit --token)\n", t.ID, t.Origin)
	case "revoke":
		id := ""
		if len(rest) == 2 {
			id = rest[1]
		}
		n, err := store.RevokeTokens(ctx, rest[0], id)
		if err != nil {
			return err
		}
		if n == 0 && id != "" {
			return fmt.Errorf("origin %s has no live token %s", rest[0], id)
		}
		if n == 0 {
			return fmt.Errorf("origin %s has no live token", rest[0])
		}
		fmt.Fprintf(g.stdout, "%d token(s) of origin %s revoked\n", n, rest[0])
	case "list":
		list, err := store.Tokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range list {
			state := "live"
			if t.Revoked != nil {
				state = "revoked " + t.Revoked.Format(time.RFC3339)
			}
			fmt.Fprintf(g.stdout, "%s\t%s\tcreated %s\t%s\n", t.Origin, t.ID, t.Created.Format(time.RFC3339), state)
		}
	}
	return nil
}

// runResultsDBSubmit posts a KCIDB I/O document to the server's
// /submissions and prints what it stored.
func runResultsDBSubmit(ctx context.Context, g *globals, args []string) error {
	cfg := g.cfg.ResultsDB
	fs := newFlags("resultsdb submit")
	defURL := cfg.URL
	if defURL == "" {
		defURL = "http://" + cfg.Listen + resultsdb.APIPrefix
	}
	api := fs.String("url", defURL, "the ResultsDB API, …/api/v2.0 (resultsdb.url; default the embedded server at resultsdb.listen)")
	token := fs.String("token", cfg.Token, "the origin's token (resultsdb.token, TASKOTRON_RESULTSDB_TOKEN)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("usage: taskotron resultsdb submit [--url API] [--token TOKEN] FILE|-")
	}
	var in io.Reader = g.stdin
	name := "standard input"
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, rest[0]
	}
	raw, err := bus.ReadAllCapped(in)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*api, "/")+"/submissions", bytes.NewReader(raw))
	if err != nil {
		return usagef("--url %s: %v", resultsdb.Redact(*api), err)
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("submit %s to %s: %w", name, resultsdb.Redact(*api), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var answer struct {
		Message    string  `json:"message"`
		Origin     string  `json:"origin"`
		Version    string  `json:"version"`
		UpgradedTo *string `json:"upgraded_to"`
		Results    []int64 `json:"results"`
		Href       string  `json:"href"`
		Checkouts  int     `json:"checkouts"`
		Builds     int     `json:"builds"`
		Tests      int     `json:"tests"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("submit %s: %s answered %s, not JSON", name, resultsdb.Redact(*api), resp.Status)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("submit %s: refused (%d): %s", name, resp.StatusCode, answer.Message)
	}
	version := answer.Version
	if answer.UpgradedTo != nil {
		version += " (upgraded to " + *answer.UpgradedTo + ")"
	}
	fmt.Fprintf(g.stdout, "%s: KCIDB %s of origin %s: %d checkouts, %d builds, %d tests → %d results\n%s\n",
		name, version, answer.Origin, answer.Checkouts, answer.Builds, answer.Tests, len(answer.Results), answer.Href)
	return nil
}
