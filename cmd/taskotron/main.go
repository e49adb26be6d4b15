// Command taskotron runs the pipeline's roles: one subcommand per role, each
// registered by its own file in this folder. This package only wires: flags,
// configuration, logging; the logic lives in the packages it calls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/printable"
)

// command is one subcommand. run gets the arguments after the subcommand
// name and the global options.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, g *globals, args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// globals are the options every subcommand shares.
type globals struct {
	configPath string
	cfg        config.Config
	log        *slog.Logger
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

// exitError carries an exit status; usage errors use 2.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usagef makes an error that ends the process with status 2.
func usagef(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// exitStatus ends the process with the given status and no message.
func exitStatus(code int) error { return &exitError{code: code} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env []string) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("taskotron", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.configPath, "config", lookupEnv(env, "TASKOTRON_CONFIG"), "configuration file (YAML)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides log_level)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "taskotron: %v\n", err)
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		printUsage(stderr)
		return 2
	}
	name := rest[0]
	if name == "help" {
		printUsage(stdout)
		return 0
	}
	// runtask keeps libtaskotron's name as a command of its own.
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "taskotron: unknown subcommand %q (run 'taskotron help' for the list)\n", name)
		return 2
	}
	cfg, err := config.Load(g.configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "taskotron: %v\n", err)
		return 2
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	g.cfg = cfg
	g.log, err = newLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "taskotron: %v\n", err)
		return 2
	}
	if err := cmd.run(ctx, g, rest[1:]); err != nil {
		var help *helpRequest
		if errors.As(err, &help) {
			fmt.Fprintf(stdout, "usage: %s [flags] — %s\n", help.fs.Name(), cmd.summary)
			help.fs.SetOutput(stdout)
			help.fs.PrintDefaults()
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "taskotron %s: %s\n", name, printable.String(ee.err.Error()))
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "taskotron %s: %s\n", name, printable.String(err.Error()))
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: taskotron [--config FILE] [--log-level LEVEL] SUBCOMMAND [ARGS]")
	fmt.Fprintln(w, "\nsubcommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

// newFlags makes a subcommand's flag set that reports errors as usage errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("taskotron "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// helpRequest asks run to print a subcommand's flags (-h, --help).
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }

// parseFlags parses a subcommand's flags; Go's flag package stops at the
// first positional argument, so flags after it are parsed too.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{fs: fs}
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
