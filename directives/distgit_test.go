package directives

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDistGit(t *testing.T) {
	s := startFakeDistGit(t)
	env := fedoraEnv(t, nil)
	env.Config.DistGit.URL = s.URL()
	dir := t.TempDir()
	out, err := runDirective(t, "distgit", map[string]any{"nvr": "lintbad-0.1-1.fc40", "path": []any{"{package}.rpmlintrc"}, "target_dir": dir}, env)
	if err != nil {
		t.Fatal(err)
	}
	files := out.(map[string]any)["downloaded_files"].([]any)
	if len(files) != 1 || files[0] != filepath.Join(dir, "lintbad.rpmlintrc") {
		t.Fatalf("downloaded_files = %v", files)
	}
	if raw, _ := os.ReadFile(files[0].(string)); !strings.Contains(string(raw), "addFilter") {
		t.Errorf("content = %q", raw)
	}
	if got := s.Requests(); !slices.Contains(got, "/rpms/lintbad/raw/f40/f/lintbad.rpmlintrc") {
		t.Errorf("requests = %v, want the branch from the disttag", got)
	}
	// package + default gitref (master means rawhide), localpath, ignore_missing.
	out, err = runDirective(t, "distgit", map[string]any{"package": "lintbad", "path": []any{"lintbad.rpmlintrc", "nope.spec"},
		"localpath": []any{"sub/rc", "nope"}, "ignore_missing": true, "target_dir": dir}, env)
	if err != nil {
		t.Fatal(err)
	}
	if files := out.(map[string]any)["downloaded_files"].([]any); len(files) != 1 || files[0] != filepath.Join(dir, "sub/rc") {
		t.Errorf("downloaded_files = %v", files)
	}
}

func TestDistGitErrors(t *testing.T) {
	s := startFakeDistGit(t)
	env := fedoraEnv(t, nil)
	env.Config.DistGit.URL = s.URL()
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"package": "lintbad", "path": "nope.spec"}, "404"},
		{map[string]any{"path": "x"}, "package or nvr is required"},
		{map[string]any{"package": "../etc", "path": "x"}, `package "../etc" is not a valid name`},
		{map[string]any{"package": "lintbad", "path": "../../x"}, "not a clean relative path"},
		{map[string]any{"package": "lintbad", "path": "x", "localpath": "../../x"}, "leaves target_dir"},
		{map[string]any{"package": "lintbad", "path": []any{"a", "b"}, "localpath": "x"}, "localpath has 1 entries but path has 2"},
		{map[string]any{"nvr": "lintbad", "path": "x"}, `NVR "lintbad"`},
	} {
		_, err := runDirective(t, "distgit", c.params, env)
		if err == nil || !strings.Contains(err.Error(), c.want) || IsInfra(err) {
			t.Errorf("%v: got %v, want %q", c.params, err, c.want)
		}
	}
	s.FailNext(100)
	_, err := runDirective(t, "distgit", map[string]any{"package": "lintbad", "path": "lintbad.rpmlintrc"}, env)
	if !IsInfra(err) {
		t.Errorf("dist-git down gave %v, want an infrastructure error", err)
	}
}
