package main

import (
	"context"
	"fmt"

	"github.com/taskotron-go/taskotron/checkout"
)

func init() {
	register(command{
		name:    "mirror",
		summary: "build or refresh the local git mirror of tasks from a folder of tasks",
		run:     runMirror,
	})
}

func runMirror(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("mirror")
	tasks := fs.String("tasks", "tasks", "folder with one sub-folder per task")
	mirror := fs.String("mirror", "", "mirror folder (default: runner.mirror, or <data_dir>/mirror)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	dest := *mirror
	if dest == "" {
		dest = g.cfg.Runner.Mirror
	}
	if dest == "" {
		dest = g.cfg.Path("mirror")
	}
	if err := checkout.Seed(*tasks, dest); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "task mirror %s is up to date with %s\n", dest, *tasks)
	return nil
}
