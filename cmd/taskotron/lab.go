package main

import (
	"context"
	"fmt"
	"time"

	"github.com/taskotron-go/taskotron/labs"
)

func init() {
	register(command{
		name:    "lab",
		summary: "a lab agent: pull requests matching its labels from the central server (lab --hub URL --token T --label k=v); lab token add|revoke|list LAB",
		run:     runLab,
	})
}

const labUsage = "usage: taskotron lab --hub URL --token T [--board NAME] [--label k=v]... [--concurrency N]\n" +
	"       taskotron lab token add|revoke LAB | lab token list   (against the central server's database, labs.db)"

func runLab(ctx context.Context, g *globals, args []string) error {
	if len(args) > 0 && args[0] == "token" {
		return runLabToken(ctx, g, args[1:])
	}
	fs := newFlags("lab")
	hub := fs.String("hub", "", "the central server's URL, https://… (default: labs.hub, execdb.url)")
	token := fs.String("token", g.cfg.Labs.Token, "the lab's token (default: labs.token, TASKOTRON_LABS_TOKEN)")
	board := fs.String("board", "", "the name of what this agent offers (default: the lab's name)")
	concurrency := fs.Int("concurrency", 1, "requests run at once")
	wait := fs.Duration("poll-wait", g.cfg.Labs.PollWait, "how long one long poll waits")
	var label labelFlags
	fs.Var(&label, "label", "a label this lab offers, key=value (repeat, or comma-separated): arch=armv7hl, board=beaglebone-black, cpu=cortex-a9")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q\n%s", rest[0], labUsage)
	}
	if *concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	labels, err := labs.ParseLabels(label)
	if err != nil {
		return usagef("--label: %v", err)
	}
	if len(labels) == 0 {
		labels = nil // the labels put with `board put` stay
	}
	u := *hub
	if u == "" {
		u = hubURL(g)
	}
	a, err := labs.NewAgent(labs.AgentOptions{Hub: u, Token: *token, Board: *board, Labels: labels, Concurrency: *concurrency,
		Config: g.cfg, PollWait: *wait, MaxArtifacts: g.cfg.ExecDB.MaxArtifacts, Log: g.log.With("role", "lab")})
	if err != nil {
		return usagef("%v", err)
	}
	return a.Run(ctx)
}

func runLabToken(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 || (args[0] != "list" && len(args) != 2) || (args[0] == "list" && len(args) != 1) {
		return usagef("usage: taskotron lab token add LAB | lab token revoke LAB | lab token list")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := labs.Open(ctx, g.cfg.Labs.DB)
	if err != nil {
		return fmt.Errorf("labs.db: %w", err)
	}
	defer store.Close()
	switch args[0] {
	case "add":
		t, err := store.AddToken(ctx, args[1])
		if err != nil {
			return err
		}
		// The only time it is shown: the server keeps its hash.
		fmt.Fprintln(g.stdout, t)
		fmt.Fprintf(g.stderr, "token for lab %s: keep it, it is not shown again (run the agent with --token or TASKOTRON_LABS_TOKEN)\n", args[1])
		return nil
	case "revoke":
		n, err := store.RevokeTokens(ctx, args[1])
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("lab %s has no live token", args[1])
		}
		fmt.Fprintf(g.stdout, "%d token(s) of lab %s revoked\n", n, args[1])
		return nil
	case "list":
		ts, err := store.Tokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			fmt.Fprintf(g.stdout, "%s\t%d live\t%d revoked\n", t.Lab, t.Live, t.Revoked)
		}
		return nil
	}
	return usagef("unknown token command %q: want add, revoke or list", args[0])
}
