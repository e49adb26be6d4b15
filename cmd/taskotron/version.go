package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/taskotron-go/taskotron/status"
)

func init() {
	register(command{
		name:    "version",
		summary: "print the version and the commit this binary was built from",
		run:     runVersion,
	})
}

// runVersion prints what the Go toolchain stamped into the binary
// (runtime/debug.ReadBuildInfo): the module version, which `go install
// …@version` sets and a build in a checkout derives from the commit, and
// the commit itself.
func runVersion(_ context.Context, g *globals, args []string) error {
	fs := newFlags("version")
	asJSON := fs.Bool("json", false, "print it as JSON (the build of /status)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("version takes no arguments, got %q", rest[0])
	}
	b := status.BuildInfo()
	if *asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	fmt.Fprintln(g.stdout, versionLine(b))
	return nil
}

// versionLine is one line: taskotron VERSION (commit REV, TIME[, modified]) GO OS/ARCH.
func versionLine(b status.Build) string {
	version := b.Version
	if version == "" {
		version = "(devel)"
	}
	commit := "commit unknown: built without version control information"
	if b.Revision != "" {
		commit = "commit " + b.Revision
		if b.Time != "" {
			commit += ", " + b.Time
		}
		if b.Modified {
			commit += ", with uncommitted changes"
		}
	}
	goVersion := b.Go
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return fmt.Sprintf("taskotron %s (%s) %s %s/%s", version, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}
