package main

import (
	"context"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/config"
)

func init() {
	register(command{
		name:    "config",
		summary: "print the effective configuration (file, then environment), or every key with --keys",
		run:     runConfig,
	})
}

func runConfig(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("config")
	keys := fs.Bool("keys", false, "list every key with its environment variable")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if *keys {
		for _, k := range config.Keys() {
			fmt.Fprintf(g.stdout, "%-32s %s\n", k[0], k[1])
		}
		return nil
	}
	out, err := yaml.Marshal(g.cfg.Redacted())
	if err != nil {
		return err
	}
	_, err = g.stdout.Write(out)
	return err
}
