package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/labs"
)

// TestRequestAndBoardCommands: request put/list/show/cancel and board
// put/list/rm against a central server, as an admin would type them; what
// is wrong is one line with exit status 2 (usage) or 1 (refused).
func TestRequestAndBoardCommands(t *testing.T) {
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data, "TASKOTRON_EXECDB_TOKEN=admin-secret"}
	api, _ := startResultsDB(t, env)
	hub := strings.TrimSuffix(api, "/api/v2.0")
	env = append(env, "TASKOTRON_LABS_HUB="+hub)

	code, out, errOut := runCLI(t, env, "request", "put", "boot-test", "-i", "kernel-6.1-1.fc40", "-t", "koji_build", "--where", "cpu=cortex-a9,board=bbb", "--priority", "5")
	if code != 0 {
		t.Fatalf("request put: %d %s %s", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	code, out, _ = runCLI(t, env, "request", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "board=bbb,cpu=cortex-a9") || !strings.Contains(out, "1 queued") {
		t.Errorf("request list: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, env, "request", "show", "--json", id)
	var r labs.Request
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Priority != 5 || r.State != labs.StateQueued || r.Where["cpu"] != "cortex-a9" {
		t.Errorf("request show --json: %d %s", code, out)
	}
	code, out, errOut = runCLI(t, env, "request", "get-run", id)
	if code != 1 || !strings.Contains(errOut, "its run is there once it ended") {
		t.Errorf("get-run of a queued request: %d %s %s", code, out, errOut)
	}
	if code, out, _ = runCLI(t, env, "request", "cancel", id); code != 0 || !strings.Contains(out, "cancelled") {
		t.Errorf("request cancel: %d %s", code, out)
	}

	if code, out, errOut = runCLI(t, env, "board", "put", "bbb-1", "--lab", "lab-a", "--label", "board=beaglebone-black", "--label", "cpu=cortex-a9"); code != 0 {
		t.Fatalf("board put: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "board", "list")
	if code != 0 || !strings.Contains(out, "bbb-1") || !strings.Contains(out, "board=beaglebone-black cpu=cortex-a9") || !strings.Contains(out, "never") {
		t.Errorf("board list: %d\n%s", code, out)
	}
	if code, out, _ = runCLI(t, env, "board", "rm", "bbb-1"); code != 0 {
		t.Errorf("board rm: %d %s", code, out)
	}

	// Tokens against the central server's database: shown once, revocable.
	code, out, errOut = runCLI(t, env, "lab", "token", "add", "lab-a")
	if code != 0 || !strings.HasPrefix(out, labs.TokenPrefix) || !strings.Contains(errOut, "not shown again") {
		t.Fatalf("lab token add: %d %q %q", code, out, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(data, "executions.sqlite*")) // with the WAL
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		if strings.Contains(string(raw), strings.TrimPrefix(strings.TrimSpace(out), labs.TokenPrefix)) {
			t.Errorf("the token itself is in %s", f)
		}
	}
	if len(files) == 0 {
		t.Error("no labs database in the data folder")
	}
	if code, out, _ = runCLI(t, env, "lab", "token", "revoke", "lab-a"); code != 0 || !strings.Contains(out, "1 token(s) of lab lab-a revoked") {
		t.Errorf("revoke: %d %s", code, out)
	}
	if code, _, errOut = runCLI(t, env, "lab", "token", "revoke", "lab-a"); code != 1 || !strings.Contains(errOut, "no live token") {
		t.Errorf("revoke again: %d %s", code, errOut)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"request", "put", "boot-test", "-t", "koji_build"}, 2, "item: give the item"},
		{[]string{"request", "put", "boot-test", "-i", "x", "-t", "koji_build", "--where", "cpu"}, 2, `--where: label "cpu": want key=value`},
		{[]string{"request", "put", "boot-test", "-i", "x", "-t", "koji_build", "--token", "wrong"}, 1, "HTTP 401"},
		{[]string{"request", "show", "no-such"}, 1, "not found"},
		{[]string{"request", "frob"}, 2, "unknown request command"},
		{[]string{"board", "put", "b", "--label", "x=a b"}, 2, "--label"},
		{[]string{"board", "put", "b"}, 1, "give its lab"},
		{[]string{"lab", "--token", ""}, 2, "a lab needs its token"},
		{[]string{"lab", "--hub", "ftp://x", "--token", "t"}, 2, "want http(s)://"},
		{[]string{"request", "list", "--hub", "http://127.0.0.1:1"}, 1, "central server http://127.0.0.1:1"},
	} {
		code, _, errOut := runCLI(t, env, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d %q, want %d and one line with %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
