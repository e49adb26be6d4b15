package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/taskotron-go/taskotron/status"
)

func init() {
	register(command{
		name:    "queue",
		summary: "show what waits: job queues (RabbitMQ or on disk), dead letters, the reporter's spool",
		run:     runQueue,
	})
}

func runQueue(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("queue")
	asJSON := fs.Bool("json", false, "print JSON")
	arches := fs.String("arches", "", "job queues to show, by arch (default: trigger.arches and noarch)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("usage: taskotron queue [--json] [--arches a,b]")
	}
	var list []string
	for _, a := range strings.Split(*arches, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	v, err := status.InspectQueues(g.cfg, list...)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.Print(g.stdout)
	return nil
}
