package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/printable"
)

func init() {
	register(command{
		name:    "executions",
		summary: "list executions from the central server (execdb.url), by state, item, task, arch",
		run:     runExecutions,
	})
	register(command{
		name:    "logs",
		summary: "print an execution's log from the central server; -f follows it while it runs",
		run:     runLogs,
	})
}

// execClient is the central server of the configuration: execdb.url, or the
// local one at resultsdb.listen (`taskotron up`, `resultsdb serve`).
func execClient(g *globals) (*execdb.Client, error) {
	u := g.cfg.ExecDB.URL
	if u == "" {
		u = "http://" + g.cfg.ResultsDB.Listen
	}
	c, err := execdb.NewClient(u, g.cfg.ExecDB.Token, g.log)
	if err != nil {
		return nil, usagef("execdb.url: %v", err)
	}
	return c, nil
}

func runExecutions(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("executions")
	state := fs.String("state", "", "only these states, comma-separated ("+joinStates()+")")
	item := fs.String("item", "", "only this item")
	task := fs.String("task", "", "only this task")
	arch := fs.String("arch", "", "only this arch")
	since := fs.String("since", "", "only those queued since (a time, or a duration like 2h)")
	limit := fs.Int("limit", 30, "at most this many")
	asJSON := fs.Bool("json", false, "print the executions as JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("usage: taskotron executions [--state S] [--item I] [--task T] [--arch A] [--since T] [--limit N] [--json]")
	}
	for _, st := range strings.Split(*state, ",") {
		if st = strings.TrimSpace(st); st != "" && !slices.Contains(execdb.States, st) {
			return usagef("--state %q: want one of %s", st, joinStates())
		}
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("--limit %d: want 1 to 1000", *limit)
	}
	c, err := execClient(g)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"state": *state, "item": *item, "taskname": *task, "arch": *arch, "since": *since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	page, err := c.List(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(page.Data)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tTASK\tITEM\tARCH\tSTATE\tATTEMPT\tOUTCOME\tQUEUED\t")
	for _, e := range page.Data {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n", e.UUID, printable.Line(e.TaskName), printable.Line(e.Item), e.Arch, e.State, e.Attempt,
			e.Outcome, e.Created.Local().Format("2006-01-02 15:04:05"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != nil {
		fmt.Fprintf(g.stderr, "more than %d: raise --limit, or narrow with --state, --item, --task, --arch, --since\n", *limit)
	}
	return nil
}

func joinStates() string {
	s := ""
	for i, st := range execdb.States {
		if i > 0 {
			s += ", "
		}
		s += st
	}
	return s
}

func runLogs(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("logs")
	follow := fs.Bool("f", false, "follow the log while the run goes on")
	attempt := fs.Int("attempt", 0, "the attempt (default: the latest that has a log)")
	name := fs.String("name", "taskotron.log", "which log: taskotron.log, or an action's NN-name.stdout/.stderr")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("usage: taskotron logs [-f] [--attempt N] [--name FILE] UUID")
	}
	uuid := rest[0]
	c, err := execClient(g)
	if err != nil {
		return err
	}
	d, err := c.Get(ctx, uuid)
	if err != nil {
		return err
	}
	if *attempt == 0 {
		*attempt = max(d.Attempt, 1)
		for _, f := range d.Logs {
			if f.Name == *name && f.Attempt > *attempt {
				*attempt = f.Attempt
			}
		}
	}
	var pos int64
	for {
		wait := time.Duration(0)
		if *follow {
			wait = 25 * time.Second
		}
		data, final, err := c.ReadLog(ctx, uuid, *attempt, *name, pos, wait)
		var se *execdb.StatusError
		if errors.As(err, &se) && se.Status == 404 && *follow && !final {
			// The run has not written it yet, or the attempt followed
			// ended without it and a later one may have it.
			if next, ok := nextAttempt(ctx, c, uuid, *attempt); ok {
				*attempt, pos = next.Attempt, 0
				fmt.Fprintf(g.stderr, "--- attempt %d%s\n", next.Attempt, onWorker(next.Worker))
				continue
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if d, err := c.Get(ctx, uuid); err == nil && terminalState(d.State) {
				return fmt.Errorf("execution %s ended without a log %q for attempt %d; its logs: %s", uuid, *name, *attempt, logNames(d.Logs))
			}
			continue
		}
		if errors.As(err, &se) && se.Status == 404 {
			return fmt.Errorf("execution %s has no log %q for attempt %d; its logs: %s", uuid, *name, *attempt, logNames(d.Logs))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		g.stdout.Write(data)
		pos += int64(len(data))
		if final && *follow {
			// The attempt ended; a later one (a retry, another worker)
			// goes on in the same execution.
			if next, ok := nextAttempt(ctx, c, uuid, *attempt); ok {
				*attempt, pos = next.Attempt, 0
				fmt.Fprintf(g.stderr, "--- attempt %d%s\n", next.Attempt, onWorker(next.Worker))
				continue
			}
			return nil
		}
		if final || !*follow && len(data) == 0 {
			return nil
		}
		if len(data) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// nextAttempt is the attempt after the given one, once it has begun (it
// is running or past it).
func nextAttempt(ctx context.Context, c *execdb.Client, uuid string, attempt int) (execdb.Attempt, bool) {
	d, err := c.Get(ctx, uuid)
	if err != nil {
		return execdb.Attempt{}, false
	}
	for _, a := range d.Attempts {
		if a.Attempt > attempt {
			return a, true
		}
	}
	return execdb.Attempt{}, false
}

func onWorker(w string) string {
	if w == "" {
		return ""
	}
	return " on " + printable.Line(w)
}

func terminalState(s string) bool {
	switch s {
	case contract.StateFinished, contract.StateCrashed, contract.StateAborted:
		return true
	}
	return false
}

func logNames(logs []execdb.LogFile) string {
	if len(logs) == 0 {
		return "none yet"
	}
	var names []string
	for _, f := range logs {
		names = append(names, fmt.Sprintf("--attempt %d --name %s", f.Attempt, printable.Line(f.Name)))
	}
	return strings.Join(names, ", ")
}
