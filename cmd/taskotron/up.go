package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/taskotron-go/taskotron/pipeline"
	"github.com/taskotron-go/taskotron/sandbox"
)

func init() {
	register(command{
		name:    "up",
		summary: "run every role in one process on the embedded defaults",
		run:     runUp,
	})
}

// UpLog is the file under data_dir the log lines of `up` go to on a
// terminal, where a live progress display takes their place.
const UpLog = "up.log"

func runUp(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("up")
	once := fs.Bool("once", false, "exit when every message is handled and the queue is drained")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	tasks := fs.String("tasks", "tasks", "folder of tasks to build the mirror from when it does not exist")
	fixtures := fs.String("fakes", "fixtures", "serve the Koji, Bodhi and dist-git doubles over this fixtures folder (empty: use koji.url and friends)")
	verbose := fs.Bool("v", false, "on a terminal, show the log lines instead of the live progress (they go to <data_dir>/"+UpLog+" too)")
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := sandbox.Check(g.cfg.Runner.Sandbox, g.configPath); err != nil {
		return usagef("%v", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := g.cfg
	dataDir := cfg.Resolved().DataDir

	// Outside a checkout (an installed binary) the demo is the copy of
	// tasks/ and fixtures/ built into the binary.
	if !set["tasks"] && !set["fakes"] {
		if _, err := os.Stat(*fixtures); os.IsNotExist(err) {
			demo, err := pipeline.UnpackDemo(filepath.Join(dataDir, "demo"))
			if err != nil {
				return err
			}
			if err := demo.Use(&cfg); err != nil {
				return err
			}
			*tasks, *fixtures = demo.Tasks, demo.Fixtures
			fmt.Fprintf(g.stderr, "taskotron up: no %s folder here (not a checkout): running the demo built into the binary, unpacked in %s\n", fs.Lookup("fakes").DefValue, demo.Dir)
		}
	}

	log := g.log
	var live *pipeline.Live
	logPath := ""
	if fd, ok := terminal(g.stderr); ok {
		// On a terminal the log lines go to a file; a live display (or,
		// asked for, the log lines as well) goes to the terminal.
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return fmt.Errorf("data folder: %w", err)
		}
		logPath = filepath.Join(dataDir, UpLog)
		f, err := os.Create(logPath)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer f.Close()
		var level slog.Level
		_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by newLogger
		toFile := slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})
		if *verbose || level <= slog.LevelDebug {
			log = slog.New(slog.NewMultiHandler(toFile, g.log.Handler()))
		} else {
			live = pipeline.NewLive(g.stderr, func() int {
				w, _, err := term.GetSize(fd)
				if err != nil {
					return 0
				}
				return w
			})
			// Warnings and errors are rare and matter: they show above
			// the progress.
			above := slog.NewTextHandler(live, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime})
			log = slog.New(slog.NewMultiHandler(toFile, above))
		}
	}

	var liveDone chan struct{}
	stopLive := func() {}
	watch := func(progress func() pipeline.Progress) {
		liveCtx, cancel := context.WithCancel(ctx)
		liveDone = make(chan struct{})
		go func() {
			defer close(liveDone)
			live.Run(liveCtx, progress, 200*time.Millisecond)
		}()
		var once sync.Once
		stopLive = func() { once.Do(func() { cancel(); <-liveDone }) }
	}
	if live == nil {
		watch = nil
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
		Config:   cfg,
		Messages: paths,
		Stdin:    g.stdin,
		TasksDir: *tasks,
		Fixtures: *fixtures,
		Once:     *once,
		Log:      log,
		Ready: func(url string) {
			log.Info("results can be browsed", "url", url)
			if live != nil {
				fmt.Fprintf(live, "Results: %s  (log: %s)", url, logPath)
			}
		},
		Watch: watch,
		Drained: func(s *pipeline.Summary) {
			stopLive()
			if err := show(s); err != nil {
				log.Error("printing the summary", "err", err)
			}
			fmt.Fprintf(g.stdout, "Every message is handled; still serving results at %s until Ctrl-C.\n", s.URL)
		},
	})
	stopLive()
	if *once && summary != nil {
		if perr := show(summary); perr != nil {
			return perr
		}
	}
	return err
}

// terminal tells whether w is a terminal, and its descriptor.
func terminal(w io.Writer) (int, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// dropTime leaves the time out of the lines shown above the live display.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
