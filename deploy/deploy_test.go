// Package deploy holds what ops install beside the binary: systemd units.
// The test checks them with systemd's own verifier and runs each unit's
// command line far enough to know its flags exist.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the units (Debian package systemd; make test installs it): %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "taskotron")
	build := exec.Command("go", "build", "-o", bin, "../cmd/taskotron")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "taskotron.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) < 3 {
		t.Fatalf("found %d units in deploy/systemd, want the trigger, worker and resultsdb ones", len(units))
	}
	for _, unit := range units {
		raw, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(raw), "/usr/local/bin/taskotron", bin)
		text = strings.ReplaceAll(text, "/etc/taskotron/taskotron.yaml", cfg)
		name := filepath.Base(unit)
		if strings.HasSuffix(name, "@.service") {
			name = strings.Replace(name, "@.service", "@1.service", 1) // an instance, as systemctl would start
		}
		local := filepath.Join(dir, name)
		if err := os.WriteFile(local, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		// The verifier exits 0 on unknown keys and bad values, but says so.
		out, err := exec.Command(analyze, "verify", "--man=no", local).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("%s: systemd-analyze verify: %v\n%s", unit, err, out)
		}
		var execStart string
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				execStart = v
			}
		}
		args := strings.Fields(execStart)
		if len(args) < 2 || args[0] != bin {
			t.Errorf("%s: ExecStart %q does not run taskotron", unit, execStart)
			continue
		}
		// -h after the unit's own flags: they must all parse.
		cmd := exec.Command(args[0], append(args[1:], "-h")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %s -h: %v\n%s", unit, execStart, err, out)
		}
	}
}
