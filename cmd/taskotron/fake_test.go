package main

import (
	"strings"
	"testing"
)

func TestFakesErrors(t *testing.T) {
	code, _, stderr := runCLI(t, nil, "fakes", "extra")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "fakes", "-fixtures", t.TempDir(), "-koji", "127.0.0.1:0", "-bodhi", "", "-distgit", "")
	if code != 1 || !strings.Contains(stderr, "koji.yaml") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("missing fixtures: exit %d, %q, want one line naming koji.yaml", code, stderr)
	}
}
