package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskotron-go/taskotron/labs"
	"github.com/taskotron-go/taskotron/printable"
)

func init() {
	register(command{
		name:    "request",
		summary: "requests for the labs on the central server: put, list, show, cancel, get-run",
		run:     runRequest,
	})
}

// hubURL is the central server of the configuration: labs.hub, execdb.url,
// or the local one at resultsdb.listen.
func hubURL(g *globals) string {
	for _, u := range []string{g.cfg.Labs.Hub, g.cfg.ExecDB.URL} {
		if u != "" {
			return u
		}
	}
	return "http://" + g.cfg.ResultsDB.Listen
}

// labelFlags collects repeated key=value flags.
type labelFlags []string

func (l *labelFlags) String() string     { return strings.Join(*l, ",") }
func (l *labelFlags) Set(v string) error { *l = append(*l, v); return nil }

func hubClient(g *globals, hub, token string) (*labs.Client, error) {
	if hub == "" {
		hub = hubURL(g)
	}
	c, err := labs.NewClient(hub, token, g.log)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

const requestUsage = "usage: taskotron request put TASK -i ITEM -t TYPE [--where k=v]... [--arch A] [--priority N]\n" +
	"       taskotron request list [--state S] [--lab L] | show ID | cancel ID | get-run ID [-o DIR]"

func runRequest(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("%s", requestUsage)
	}
	fs := newFlags("request " + args[0])
	hub := fs.String("hub", "", "the central server's URL (default: labs.hub, execdb.url, or resultsdb.listen)")
	token := fs.String("token", g.cfg.ExecDB.Token, "the central server's token for changes (default: execdb.token)")
	asJSON := fs.Bool("json", false, "print JSON")
	switch args[0] {
	case "put":
		return requestPut(ctx, g, fs, hub, token, asJSON, args[1:])
	case "list":
		return requestList(ctx, g, fs, hub, token, asJSON, args[1:])
	case "show", "cancel", "get-run":
		return requestOne(ctx, g, fs, args[0], hub, token, asJSON, args[1:])
	}
	return usagef("unknown request command %q: want put, list, show, cancel or get-run", args[0])
}

func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func requestPut(ctx context.Context, g *globals, fs *flag.FlagSet, hub, token *string, asJSON *bool, args []string) error {
	item := fs.String("i", "", "the item to test (-i xchat-0.5-1.fc20)")
	itemType := fs.String("t", "", "the item's type (koji_build, bodhi_update, …)")
	arch := fs.String("a", "", "the arch to test (default: the lab's arch label, else noarch)")
	priority := fs.Int("priority", 0, "0 to 9: higher runs first")
	id := fs.String("id", "", "the request's id (default: a new uuid); a put with a known id queues nothing twice")
	var where labelFlags
	fs.Var(&where, "where", "a label the lab must offer, key=value (repeat, or comma-separated)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("%s", requestUsage)
	}
	labels, err := labs.ParseLabels(where)
	if err != nil {
		return usagef("--where: %v", err)
	}
	n := labs.NewRequest{ID: *id, TaskName: rest[0], Item: *item, ItemType: *itemType, Arch: *arch, Where: labels, Priority: *priority}
	if err := n.Check(); err != nil {
		return usagef("%v", err)
	}
	c, err := hubClient(g, *hub, *token)
	if err != nil {
		return err
	}
	got, err := c.Put(ctx, n)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(g, got)
	}
	for _, r := range got {
		fmt.Fprintln(g.stdout, r.ID)
	}
	return nil
}

func requestList(ctx context.Context, g *globals, fs *flag.FlagSet, hub, token *string, asJSON *bool, args []string) error {
	state := fs.String("state", "", "only these states, comma-separated ("+strings.Join(labs.States, ", ")+")")
	lab := fs.String("lab", "", "only those of this lab")
	limit := fs.Int("limit", 100, "at most this many")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("%s", requestUsage)
	}
	c, err := hubClient(g, *hub, *token)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *state != "" {
		q.Set("state", *state)
	}
	if *lab != "" {
		q.Set("lab", *lab)
	}
	l, err := c.List(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(g, l)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTASK\tITEM\tWHERE\tPRI\tSTATE\tATTEMPT\tLAB\tOUTCOME\tQUEUED\t")
	for _, r := range l.Data {
		where := r.Where.String()
		if where == "" {
			where = "(any)"
		}
		board := r.Lab
		if r.Board != "" {
			board += "/" + r.Board
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s ago\t\n", r.ID, printable.String(r.TaskName), printable.String(r.Item), where,
			r.Priority, r.State, r.Attempt, board, r.Outcome, time.Since(r.Created).Round(time.Second))
	}
	tw.Flush()
	fmt.Fprintf(g.stdout, "%d queued, %d running, %d finished, %d crashed, %d aborted, %d cancelled\n", l.Counts[labs.StateQueued],
		l.Counts[labs.StateRunning]+l.Counts[labs.StateReporting], l.Counts[labs.StateFinished], l.Counts[labs.StateCrashed],
		l.Counts[labs.StateAborted], l.Counts[labs.StateCancelled])
	return nil
}

func requestOne(ctx context.Context, g *globals, fs *flag.FlagSet, cmd string, hub, token *string, asJSON *bool, args []string) error {
	out := fs.String("o", "", "get-run: the folder to unpack the run into (default: ./ID)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("usage: taskotron request %s ID", cmd)
	}
	id := rest[0]
	c, err := hubClient(g, *hub, *token)
	if err != nil {
		return err
	}
	switch cmd {
	case "cancel":
		r, err := c.Cancel(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s %s\n", r.ID, r.State)
		return nil
	case "get-run":
		r, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		dir := *out
		if dir == "" {
			dir = filepath.Base(id)
		}
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return usagef("-o %s: the folder is not empty", dir)
		}
		if err := c.GetRun(ctx, id, dir, 1<<32); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s %s %s: %d results, run in %s\n", r.ID, r.State, r.Outcome, r.Results, dir)
		return nil
	}
	r, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(g, r)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, printable.String(v)) }
	row("id", r.ID)
	row("task", r.TaskName)
	row("item", r.Item+" ("+r.ItemType+")")
	row("where", r.Where.String())
	row("priority", strconv.Itoa(r.Priority))
	row("state", fmt.Sprintf("%s, attempt %d", r.State, r.Attempt))
	if r.Lab != "" {
		row("lab", r.Lab+"/"+r.Board)
	}
	if r.Outcome != "" {
		row("outcome", fmt.Sprintf("%s, %d results", r.Outcome, r.Results))
	}
	if r.Reason != "" {
		row("reason", r.Reason)
	}
	row("queued", r.Created.Format(time.RFC3339))
	return tw.Flush()
}
