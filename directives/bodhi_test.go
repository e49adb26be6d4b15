package directives

import (
	"slices"
	"strings"
	"testing"
)

func TestBodhiDownload(t *testing.T) {
	h := startFakeKoji(t)
	b := startFakeBodhi(t)
	env := fedoraEnv(t, h)
	env.Config.Bodhi.URL = b.URL()
	out, err := runDirective(t, "bodhi", map[string]any{"action": "download", "update_id": "FEDORA-2024-0a1b2c3d4e",
		"arch": []any{"x86_64"}, "src": true, "target_dir": t.TempDir()}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pyboth-2.0-1.fc40.noarch.rpm", "pyboth-2.0-1.fc40.src.rpm", "pythree-3.1-1.fc40.noarch.rpm", "pythree-3.1-1.fc40.src.rpm"}
	if got := baseNames(out.(map[string]any)["downloaded_rpms"]); !slices.Equal(got, want) {
		t.Errorf("downloaded_rpms = %v, want %v", got, want)
	}
}

func TestBodhiErrors(t *testing.T) {
	h := startFakeKoji(t)
	b := startFakeBodhi(t)
	env := fedoraEnv(t, h)
	env.Config.Bodhi.URL = b.URL()
	for _, c := range []struct {
		params map[string]any
		want   string
		infra  bool
	}{
		{map[string]any{"action": "download", "update_id": "FEDORA-2024-nope", "arch": "x86_64"}, "update FEDORA-2024-nope not found", false},
		{map[string]any{"action": "download", "update_id": "FEDORA-2024-0a1b2c3d4e", "arch": []any{}}, "nothing to download", false},
		{map[string]any{"action": "upload", "update_id": "x", "arch": "x86_64"}, `unknown action "upload"`, false},
	} {
		_, err := runDirective(t, "bodhi", c.params, env)
		if err == nil || !strings.Contains(err.Error(), c.want) || IsInfra(err) != c.infra {
			t.Errorf("%v: got %v (infra %v), want %q", c.params, err, IsInfra(err), c.want)
		}
	}
	b.FailNext(100)
	_, err := runDirective(t, "bodhi", map[string]any{"action": "download", "update_id": "FEDORA-2024-0a1b2c3d4e", "arch": "x86_64"}, env)
	if !IsInfra(err) || !strings.Contains(err.Error(), "503") {
		t.Errorf("a Bodhi that stays down gave %v, want an infrastructure error", err)
	}
}
