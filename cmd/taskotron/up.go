package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskotron-go/taskotron/pipeline"
)

func init() {
	register(command{
		name:    "up",
		summary: "run every role in one process on the embedded defaults",
		run:     runUp,
	})
}

func runUp(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("up")
	once := fs.Bool("once", false, "exit when every message is handled and the queue is drained")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	tasks := fs.String("tasks", "tasks", "folder of tasks to build the mirror from when it does not exist")
	fixtures := fs.String("fakes", "fixtures", "serve the Koji, Bodhi and dist-git doubles over this fixtures folder (empty: use koji.url and friends)")
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	show := func(s *pipeline.Summary) error {
		if *asJSON {
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(s)
		}
		s.Print(g.stdout)
		return nil
	}
	summary, err := pipeline.Up(ctx, pipeline.Options{
		Config:   g.cfg,
		Messages: paths,
		Stdin:    g.stdin,
		TasksDir: *tasks,
		Fixtures: *fixtures,
		Once:     *once,
		Log:      g.log,
		Ready: func(url string) {
			g.log.Info("results can be browsed", "url", url)
		},
		Drained: func(s *pipeline.Summary) {
			if err := show(s); err != nil {
				g.log.Error("printing the summary", "err", err)
			}
			fmt.Fprintf(g.stdout, "Every message is handled; still serving results at %s until Ctrl-C.\n", s.URL)
		},
	})
	if *once && summary != nil {
		if perr := show(summary); perr != nil {
			return perr
		}
	}
	return err
}
