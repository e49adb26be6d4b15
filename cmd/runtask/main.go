// Command runtask is `taskotron runtask` under libtaskotron's name, for
// task authors: runtask -i ITEM -t TYPE [options] runtask.yml. The
// configuration comes from the file named by TASKOTRON_CONFIG, if any, and
// TASKOTRON_* environment overrides.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/runtask"
	"github.com/taskotron-go/taskotron/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg, err := config.Load(os.Getenv("TASKOTRON_CONFIG"), os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "runtask: %v\n", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "runtask: log level %q: want debug, info, warn or error\n", cfg.LogLevel)
		os.Exit(2)
	}
	if err := sandbox.Check(cfg.Runner.Sandbox, os.Getenv("TASKOTRON_CONFIG")); err != nil {
		fmt.Fprintf(os.Stderr, "runtask: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	code := runtask.Run(ctx, os.Args[1:], cfg, log, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
