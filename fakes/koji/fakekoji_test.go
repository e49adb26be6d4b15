package fakekoji

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFixture(t *testing.T) {
	d, err := Load("../../fixtures/koji/koji.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := d.Builds["tinyhello-1.0-1.fc40"]
	if b == nil || len(b.RPMs) != 6 || b.Log == "" {
		t.Fatalf("tinyhello-1.0-1.fc40 = %+v, want 6 RPMs and a build log", b)
	}
	if p := d.Builds["pyboth-2.0-1.fc40"]; p == nil || p.Epoch == nil || *p.Epoch != 1 {
		t.Errorf("pyboth must carry epoch 1 from its RPM header: %+v", p)
	}
	for _, r := range b.RPMs {
		if len(r.PayloadHash) != 32 {
			t.Errorf("%s: payloadhash %q is not an MD5", r.Header.NVRA(), r.PayloadHash)
		}
	}
	if got := d.Tags["f41"].Builds; len(got) != 3 || got[1] != "pyboth-2.1-1.fc41" {
		t.Errorf("f41 builds = %v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"tags:\n  f40:\n    builds: [nope-1-1]\n": "tag f40: unknown build nope-1-1",
		"builds: [x]\n":                       `NVR "x"`,
		"tagz: {}\n":                          "field tagz not found",
		"tags:\n  f40:\n    parents: [f39]\n": "unknown parent f39",
	} {
		p := filepath.Join(dir, "koji.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%q) = %v, want an error naming %s with %q", body, err, p, want)
		}
	}
}
