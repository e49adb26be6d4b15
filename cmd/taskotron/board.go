package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskotron-go/taskotron/labs"
)

func init() {
	register(command{
		name:    "board",
		summary: "the boards labs offer on the central server: put, rm, list",
		run:     runBoard,
	})
}

const boardUsage = "usage: taskotron board put NAME --lab LAB --label k=v ... | board rm NAME | board list"

func runBoard(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("%s", boardUsage)
	}
	fs := newFlags("board " + args[0])
	hub := fs.String("hub", "", "the central server's URL (default: labs.hub, execdb.url, or resultsdb.listen)")
	token := fs.String("token", g.cfg.ExecDB.Token, "the central server's token (execdb.token), or the lab's own token")
	lab := fs.String("lab", "", "put: the board's lab (with a lab's token: that lab)")
	asJSON := fs.Bool("json", false, "print JSON")
	var label labelFlags
	fs.Var(&label, "label", "put: a label the board offers, key=value (repeat, or comma-separated)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := hubClient(g, *hub, *token)
	if err != nil {
		return err
	}
	switch args[0] {
	case "put":
		if len(rest) != 1 {
			return usagef("%s", boardUsage)
		}
		labels, err := labs.ParseLabels(label)
		if err != nil {
			return usagef("--label: %v", err)
		}
		if err := labs.CheckLabName(rest[0]); err != nil {
			return usagef("board %v", err)
		}
		b, err := c.PutBoard(ctx, rest[0], *lab, labels)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(g, b)
		}
		fmt.Fprintf(g.stdout, "%s (lab %s): %s\n", b.Name, b.Lab, b.Offers())
		return nil
	case "rm":
		if len(rest) != 1 {
			return usagef("%s", boardUsage)
		}
		if err := c.RemoveBoard(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s removed\n", rest[0])
		return nil
	case "list":
		if len(rest) != 0 {
			return usagef("%s", boardUsage)
		}
		bs, err := c.Boards(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(g, bs)
		}
		tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BOARD\tLAB\tLABELS\tLAST SEEN\tRUNNING\t")
		for _, b := range bs {
			seen := "never"
			if b.LastSeen != nil {
				seen = time.Since(*b.LastSeen).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", b.Name, b.Lab, strings.ReplaceAll(b.Labels.String(), ",", " "), seen, b.Running)
		}
		return tw.Flush()
	}
	return usagef("unknown board command %q: want put, rm or list", args[0])
}
