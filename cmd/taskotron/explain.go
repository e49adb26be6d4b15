package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/trigger"
)

func init() {
	register(command{
		name:    "explain",
		summary: "show, as JSON, how the trigger rules treat a message: its data, each rule and why, the jobs",
		run:     runExplain,
	})
}

const explainUsage = "usage: taskotron explain [--rules FILE] [--critpath FILE] [--arches a,b] MESSAGE.json|-"

func runExplain(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("explain")
	rulesPath := fs.String("rules", "", "trigger_rules.yml (default: trigger.rules, or the built-in rules)")
	critpath := fs.String("critpath", "", "critpath list, one package a line (default: trigger.critpath_file)")
	arches := fs.String("arches", "", "default arches, comma-separated (default: trigger.arches)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("%s", explainUsage)
	}
	cfg := g.cfg
	if *critpath != "" {
		cfg.Trigger.CritpathFile = *critpath
	}
	if *arches != "" {
		cfg.Trigger.Arches = strings.Split(*arches, ",")
	}
	setup, err := trigger.FromConfig(ctx, cfg, *rulesPath, false, g.log)
	if err != nil {
		return err
	}
	in := g.stdin
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("message %s: %w", rest[0], err)
		}
		defer f.Close()
		in = f
	}
	raw, err := bus.ReadAllCapped(in)
	if err != nil {
		return fmt.Errorf("message %s: %w", rest[0], err)
	}
	msg, err := bus.DecodeMessage(raw)
	if err != nil {
		return fmt.Errorf("message %s: %w", rest[0], err)
	}
	ex, err := trigger.New(setup.Options).Explain(msg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ex)
}
