package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noop lets the tests reach the configuration path without any role.
func init() {
	register(command{name: "noop", summary: "test only", run: func(context.Context, *globals, []string) error { return nil }})
}

func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb, env)
	return code, out.String(), errb.String()
}

func TestUsageErrorsAreOneLineAndExitTwo(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("runner:\n  concurrency: [1\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("reporter:\n  spool_dir: /x\n"), 0o644)

	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"unknown subcommand", nil, []string{"frobnicate"}, []string{"unknown subcommand", "frobnicate"}},
		{"unknown global flag", nil, []string{"--colour", "help"}, []string{"colour"}},
		{"missing config file", nil, []string{"--config", filepath.Join(dir, "none.yaml"), "noop"}, []string{"none.yaml", "does not exist"}},
		{"malformed config", nil, []string{"--config", bad, "noop"}, []string{"bad.yaml", "line"}},
		{"unknown config key", nil, []string{"--config", unknown, "noop"}, []string{"unknown.yaml", "spool_dir"}},
		{"config from env", []string{"TASKOTRON_CONFIG=" + unknown}, []string{"noop"}, []string{"unknown.yaml", "spool_dir"}},
		{"bad env override", []string{"TASKOTRON_RUNNER_CONCURRENCY=lots"}, []string{"noop"}, []string{"TASKOTRON_RUNNER_CONCURRENCY", "lots"}},
		{"bad log level", nil, []string{"--log-level", "loud", "noop"}, []string{"loud"}},
		{"no subcommand", nil, nil, []string{"usage"}},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, c.env, c.args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (stderr %q)", c.name, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not mention %q", c.name, stderr, w)
			}
		}
		if c.name != "no subcommand" && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: more than one line: %q", c.name, stderr)
		}
	}
}

func TestHelpListsSubcommands(t *testing.T) {
	code, out, _ := runCLI(t, nil, "help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out, name) {
			t.Errorf("help does not list %s", name)
		}
	}
}

func TestSubcommandHelpPrintsItsFlags(t *testing.T) {
	code, out, _ := runCLI(t, nil, "up", "-h")
	if code != 0 || !strings.Contains(out, "-once") || !strings.Contains(out, "usage: taskotron up") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}
