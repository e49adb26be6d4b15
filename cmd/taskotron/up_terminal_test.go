package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// upOnTerminal runs `up --once` in-process with standard output and error
// on a pseudo-terminal, and returns what the terminal showed.
// global are options before the subcommand, extra after it.
func upOnTerminal(t *testing.T, dataDir string, global []string, extra ...string) (int, string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once tty is closed
	}()
	env := []string{"TASKOTRON_DATA_DIR=" + dataDir, "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0"}
	args := append(append([]string(nil), global...), "up", "--once", "--tasks", "../../tasks", "--fakes", "../../fixtures")
	args = append(args, extra...)
	args = append(args, "../../fixtures/messages/koji-build-state-change__6.json", "../../fixtures/messages/koji-build-state-change__2.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), tty, tty, env)
	tty.Close()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output did not end")
	}
	return code, screen.String()
}

var ansi = regexp.MustCompile(`\x1b\[[0-9]*[A-Za-z]`)

func TestUpOnATerminalShowsLiveProgressAndLogsToAFile(t *testing.T) {
	data := t.TempDir()
	code, screen := upOnTerminal(t, data, nil)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, screen)
	}
	if strings.Contains(screen, "level=INFO") {
		t.Errorf("log lines on the terminal:\n%s", screen)
	}
	// The progress is redrawn in place: the cursor goes back up over it.
	if !strings.Contains(screen, "\x1b[2A\r\x1b[J") {
		t.Errorf("no redraw on the terminal:\n%q", screen)
	}
	plain := ansi.ReplaceAllString(screen, "")
	for _, want := range []string{
		"Results: http://127.0.0.1:",
		"(log: " + filepath.Join(data, UpLog) + ")",
		"messages  2 read: 1 made jobs, 1 ignored",
		"jobs      3 queued, 0 running, 3 done: 3 PASSED",
		// the summary at the end stays
		"2 messages: 1 made jobs, 1 ignored. Jobs: 3 PASSED.",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("the terminal does not show %q:\n%s", want, plain)
		}
	}
	// While jobs ran, the display named them and their action.
	if !regexp.MustCompile(`(?m)^  (nvr-format|rpmlint|python-versions) +(x86_64|noarch) +packit-0\.43\.0-1\.fc36  \S`).MatchString(strings.ReplaceAll(plain, "\r", "")) {
		t.Errorf("no running job shown:\n%s", plain)
	}
	log, err := os.ReadFile(filepath.Join(data, UpLog))
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	for _, want := range []string{"level=INFO", `msg="results can be browsed"`, `msg="job done"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("%s does not have %s:\n%s", UpLog, want, log)
		}
	}
}

func TestUpOnATerminalWithVShowsTheLogLines(t *testing.T) {
	for _, c := range []struct{ global, up []string }{{nil, []string{"-v"}}, {[]string{"--log-level", "debug"}, nil}} {
		data := t.TempDir()
		code, screen := upOnTerminal(t, data, c.global, c.up...)
		if code != 0 {
			t.Fatalf("%v %v: exit %d\n%s", c.global, c.up, code, screen)
		}
		if !strings.Contains(screen, `msg="job done"`) || strings.Contains(screen, "\x1b[J") {
			t.Errorf("%v %v: want the log lines and no live display:\n%s", c.global, c.up, screen)
		}
		if !strings.Contains(screen, "Jobs: 3 PASSED.") {
			t.Errorf("%v %v: no summary:\n%s", c.global, c.up, screen)
		}
		log, err := os.ReadFile(filepath.Join(data, UpLog))
		if err != nil || !strings.Contains(string(log), `msg="job done"`) {
			t.Errorf("%v %v: %s: %v\n%s", c.global, c.up, UpLog, err, log)
		}
	}
}

// Not on a terminal, the log lines stay on standard error and no log file
// is written.
func TestUpNotOnATerminalLogsToStandardError(t *testing.T) {
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data, "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0"}
	code, stdout, stderr := runCLI(t, env, "up", "--once", "--tasks", "../../tasks", "--fakes", "../../fixtures",
		"../../fixtures/messages/koji-build-state-change__2.json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, `level=INFO msg="results can be browsed"`) || strings.Contains(stderr, "\x1b[") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if !strings.Contains(stdout, "1 messages: 0 made jobs, 1 ignored.") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(data, UpLog)); !os.IsNotExist(err) {
		t.Errorf("%s written although not on a terminal (%v)", UpLog, err)
	}
}
