package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs the taskotron command line in this process.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, nil)
	return code, stdout.String(), stderr.String()
}

// An origin gets a token from the command line, submits a KCIDB document
// with it to a running server, and is cut off by revoking it.
func TestResultsDBTokensAndSubmit(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "resultsdb.sqlite")
	api, _ := startResultsDB(t, nil, "--db", db, "--token", "main-token")

	code, out, errOut := runCmd(t, "", "resultsdb", "token", "add", "ci_a", "--db", db)
	token := strings.TrimSpace(out)
	m := regexp.MustCompile(`^token ([0-9a-f]+) for origin ci_a: keep it, it is not shown again`).FindStringSubmatch(errOut)
	if code != 0 || !strings.HasPrefix(token, "trdb_") || strings.Contains(token, "\n") || m == nil {
		t.Fatalf("token add: %d %q %q", code, out, errOut)
	}
	id := m[1]

	doc, err := os.ReadFile(filepath.Join("..", "..", "kcidb", "testdata", "v5.3.json"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, "", "resultsdb", "submit", "--url", api, "--token", token, file)
	if code != 0 || !strings.HasPrefix(out, file+": KCIDB 5.3 of origin ci_a: 1 checkouts, 1 builds, 4 tests → 5 results\n") {
		t.Fatalf("submit: %d %q %q", code, out, errOut)
	}
	if code, got := httpDo(t, "GET", api+"/results?origin=ci_a", "", ""); code != 200 || len(got["data"].([]any)) != 5 {
		t.Errorf("results of ci_a: %d %v", code, got)
	}
	// From standard input, an older minor: upgraded.
	v50, _ := os.ReadFile(filepath.Join("..", "..", "kcidb", "testdata", "v5.0.json"))
	code, out, errOut = runCmd(t, string(v50), "resultsdb", "submit", "--url", api, "--token", token, "-")
	if code != 0 || !strings.Contains(out, "KCIDB 5.0 (upgraded to 5.3) of origin ci_a: 0 checkouts, 0 builds, 1 tests → 1 results") {
		t.Errorf("submit from stdin: %d %q %q", code, out, errOut)
	}
	// A bad document: one line naming the field.
	code, _, errOut = runCmd(t, `{"version": {"major": 5, "minor": 3}, "tests": [{"id": "ci_a:1", "origin": "ci_a", "build_id": "ci_a:2", "status": "OK"}]}`,
		"resultsdb", "submit", "--url", api, "--token", token, "-")
	if code != 1 || !strings.Contains(errOut, "refused (400): Malformed Request: KCIDB 5.3: $.tests[0].status: value must be one of") ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("bad document: %d %q", code, errOut)
	}

	code, out, _ = runCmd(t, "", "resultsdb", "token", "list", "--db", db)
	if code != 0 || !regexp.MustCompile(`(?m)^ci_a\t`+id+`\tcreated \S+\tlive$`).MatchString(out) || strings.Contains(out, token) {
		t.Errorf("token list: %d %q", code, out)
	}
	code, out, errOut = runCmd(t, "", "resultsdb", "token", "revoke", "ci_a", id, "--db", db)
	if code != 0 || out != "1 token(s) of origin ci_a revoked\n" {
		t.Errorf("token revoke: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "", "resultsdb", "submit", "--url", api, "--token", token, file)
	if code != 1 || !strings.Contains(errOut, "refused (401): Invalid bearer token: it was revoked") {
		t.Errorf("submit with a revoked token: %d %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, "", "resultsdb", "token", "revoke", "ci_a", "--db", db); code != 1 || !strings.Contains(errOut, "origin ci_a has no live token") {
		t.Errorf("revoke again: %d %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, "", "resultsdb", "token", "add", "CI-A", "--db", db); code != 2 || !strings.Contains(errOut, "origin 'CI-A': use lower-case letters, digits and '_'") {
		t.Errorf("token add CI-A: %d %q", code, errOut)
	}
	if code, _, _ = runCmd(t, "", "resultsdb", "token", "frobnicate"); code != 2 {
		t.Errorf("token frobnicate: exit %d, want 2", code)
	}
	// The old token still writes, as the default origin.
	if code, got := httpDo(t, "POST", api+"/results", "main-token", serveResult); code != 201 || got["origin"] != "taskotron" {
		t.Errorf("post with resultsdb.token: %d %v", code, got)
	}
}
