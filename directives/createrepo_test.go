package directives

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreaterepo(t *testing.T) {
	env := fedoraEnv(t, nil)
	dir := filepath.Join(env.WorkDir, "repo")
	os.MkdirAll(dir, 0o755)
	raw, err := os.ReadFile("../fixtures/rpms/pythree-3.1-1.fc40/pythree-3.1-1.fc40.noarch.rpm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pythree-3.1-1.fc40.noarch.rpm"), raw, 0o644)
	out, err := runDirective(t, "createrepo", map[string]any{"repodir": "repo"}, env)
	if err != nil {
		t.Fatalf("createrepo_c (apt-get install createrepo-c): %v", err)
	}
	if !strings.Contains(out.(string), "1 packages") {
		t.Errorf("output = %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "repodata", "repomd.xml")); err != nil {
		t.Errorf("no repodata: %v", err)
	}
	if _, err := runDirective(t, "createrepo", map[string]any{"repodir": "nope"}, env); err == nil || !strings.Contains(err.Error(), "is not a folder") {
		t.Errorf("missing repodir gave %v", err)
	}
}
