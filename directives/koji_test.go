package directives

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/koji"
)

func TestKojiDownloadArchRules(t *testing.T) {
	h := startFakeKoji(t)
	env := fedoraEnv(t, h)
	for _, c := range []struct {
		name   string
		params map[string]any
		rpms   []string
		logs   []string
	}{
		{"x86_64 brings noarch", map[string]any{"arch": "x86_64"},
			[]string{"tinyhello-1.0-1.fc40.x86_64.rpm", "tinyhello-doc-1.0-1.fc40.noarch.rpm"}, nil},
		{"i386 expands, src, build logs", map[string]any{"arch": []any{"i386"}, "src": true, "build_log": true},
			[]string{"tinyhello-1.0-1.fc40.i686.rpm", "tinyhello-1.0-1.fc40.src.rpm", "tinyhello-doc-1.0-1.fc40.noarch.rpm"},
			[]string{"build.log.i686", "build.log.noarch"}},
		{"all with debuginfo, no noarch", map[string]any{"arch": "all", "arch_exclude": "noarch", "debuginfo": true},
			[]string{"tinyhello-1.0-1.fc40.i686.rpm", "tinyhello-1.0-1.fc40.x86_64.rpm", "tinyhello-debuginfo-1.0-1.fc40.i686.rpm", "tinyhello-debuginfo-1.0-1.fc40.x86_64.rpm"}, nil},
		{"empty arch list takes only src", map[string]any{"arch": []any{}, "src": true},
			[]string{"tinyhello-1.0-1.fc40.src.rpm"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.params["action"] = "download"
			c.params["koji_build"] = "tinyhello-1.0-1.fc40"
			c.params["target_dir"] = t.TempDir()
			out, err := runDirective(t, "koji", c.params, env)
			if err != nil {
				t.Fatal(err)
			}
			m := out.(map[string]any)
			if got := baseNames(m["downloaded_rpms"]); !slices.Equal(got, c.rpms) {
				t.Errorf("downloaded_rpms = %v, want %v", got, c.rpms)
			}
			if got := baseNames(m["downloaded_logs"]); !slices.Equal(got, c.logs) {
				t.Errorf("downloaded_logs = %v, want %v", got, c.logs)
			}
			for _, p := range m["downloaded_rpms"].([]any) {
				if _, err := koji.VerifyRPM(p.(string), ""); err != nil {
					t.Errorf("downloaded file is not an intact RPM: %v", err)
				}
			}
		})
	}
}

func TestKojiDownloadByNEVR(t *testing.T) {
	h := startFakeKoji(t)
	out, err := runDirective(t, "koji", map[string]any{"action": "download", "koji_build": "pyboth-1:2.0-1.fc40",
		"arch": "noarch", "target_dir": t.TempDir()}, fedoraEnv(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if got := baseNames(out.(map[string]any)["downloaded_rpms"]); !slices.Equal(got, []string{"pyboth-2.0-1.fc40.noarch.rpm"}) {
		t.Errorf("downloaded_rpms = %v", got)
	}
}

func TestKojiBuildLogErrors(t *testing.T) {
	h := startFakeKoji(t)
	h.DropLog("pythree-3.1-1.fc40")
	out, err := runDirective(t, "koji", map[string]any{"action": "download", "koji_build": "pythree-3.1-1.fc40",
		"arch": "x86_64", "build_log": true, "target_dir": t.TempDir()}, fedoraEnv(t, h))
	if err != nil {
		t.Fatal(err)
	}
	m := out.(map[string]any)
	if got := m["log_errors"].([]any); len(got) != 1 || got[0] != "noarch" {
		t.Errorf("log_errors = %v, want [noarch]", got)
	}
	if got := baseNames(m["downloaded_rpms"]); !slices.Equal(got, []string{"pythree-3.1-1.fc40.noarch.rpm"}) {
		t.Errorf("a missing log must not stop the download: %v", got)
	}
}

func TestKojiDownloadTagAndLatestStable(t *testing.T) {
	h := startFakeKoji(t)
	env := fedoraEnv(t, h)
	out, err := runDirective(t, "koji", map[string]any{"action": "download_tag", "koji_tag": "f40-updates-testing-pending",
		"arch": []any{"x86_64"}, "target_dir": "tag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lintbad-0.1-1.fc40.noarch.rpm", "pyboth-2.0-1.fc40.noarch.rpm", "pythree-3.1-1.fc40.noarch.rpm"}
	rpms := out.(map[string]any)["downloaded_rpms"]
	if got := baseNames(rpms); !slices.Equal(got, want) {
		t.Errorf("download_tag = %v, want %v", got, want)
	}
	if p := rpms.([]any)[0].(string); !strings.HasPrefix(p, filepath.Join(env.WorkDir, "tag")) {
		t.Errorf("a relative target_dir must be below the work folder: %s", p)
	}
	out, err = runDirective(t, "koji", map[string]any{"action": "download_latest_stable", "koji_build": "tinyhello-1.1-1.fc40",
		"arch": "x86_64", "target_dir": t.TempDir()}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := baseNames(out.(map[string]any)["downloaded_rpms"]); !slices.Equal(got, []string{"tinyhello-1.0-1.fc40.x86_64.rpm", "tinyhello-doc-1.0-1.fc40.noarch.rpm"}) {
		t.Errorf("latest stable of tinyhello in f40 = %v", got)
	}
	out, err = runDirective(t, "koji", map[string]any{"action": "download_latest_stable", "koji_build": "lintbad-0.1-1.fc40",
		"arch": "x86_64", "target_dir": t.TempDir()}, env)
	if err != nil || len(out.(map[string]any)) != 0 {
		t.Errorf("no stable lintbad in f40 must give {}, got %v, %v", out, err)
	}
}

func TestKojiErrors(t *testing.T) {
	h := startFakeKoji(t)
	env := fedoraEnv(t, h)
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"action": "download", "koji_build": "pythree-3.1-1.fc40", "arch": "noarch", "target_dir": t.TempDir()}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"missing build", base(map[string]any{"koji_build": "nosuch-1.0-1.fc40"}), "koji build nosuch-1.0-1.fc40: not found"},
		{"unknown tag", base(map[string]any{"action": "download_tag", "koji_tag": "f99"}), "koji tag f99: not found"},
		{"unknown action", base(map[string]any{"action": "build"}), `unknown action "build"`},
		{"no arch", map[string]any{"action": "download", "koji_build": "x-1-1"}, "parameter arch is required"},
		{"bad bool", base(map[string]any{"src": "maybe"}), "parameter src must be true or false"},
		{"no disttag", base(map[string]any{"action": "download_latest_stable", "koji_build": "x-1-1"}), "no Fedora disttag"},
	} {
		_, err := runDirective(t, "koji", c.params, env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if IsInfra(err) {
			t.Errorf("%s: %v is the task's input, not an infrastructure failure", c.name, err)
		}
	}
}

func TestKojiWrongChecksumIsInfra(t *testing.T) {
	h := startFakeKoji(t)
	h.SetPayloadHash("pythree-3.1-1.fc40.noarch", strings.Repeat("0", 32))
	dir := t.TempDir()
	_, err := runDirective(t, "koji", map[string]any{"action": "download", "koji_build": "pythree-3.1-1.fc40", "arch": "noarch", "target_dir": dir}, fedoraEnv(t, h))
	if !IsInfra(err) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("wrong checksum gave %v, want an infrastructure error saying checksum mismatch", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a bad download was left in target_dir: %v", left)
	}
}

func TestKojiHubTimeoutIsInfra(t *testing.T) {
	h := startFakeKoji(t)
	h.Stall(time.Minute)
	env := fedoraEnv(t, h)
	env.Config.Koji.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := runDirective(t, "koji", map[string]any{"action": "download", "koji_build": "pythree-3.1-1.fc40", "arch": "noarch"}, env)
	if !IsInfra(err) || !strings.Contains(err.Error(), h.HubURL()) || !strings.Contains(err.Error(), "getBuild") {
		t.Fatalf("a hub that times out gave %v, want an infrastructure error naming the hub and the call", err)
	}
	if calls := len(h.Calls()); calls != 2 {
		t.Errorf("hub was called %d times, want 2 (one retry)", calls)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("giving up took %v", time.Since(start))
	}
	h.Stall(0)
	h.FailNext(5)
	_, err = runDirective(t, "koji", map[string]any{"action": "download", "koji_build": "pythree-3.1-1.fc40", "arch": "noarch"}, env)
	var ue *koji.UnavailableError
	if !IsInfra(err) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a hub that answers 503 gave %v", err)
	}
}

func TestKojiLatestByRelease(t *testing.T) {
	h := startFakeKoji(t)
	out, err := runDirective(t, "koji", map[string]any{"action": "latest_by_release", "koji_tag": "f40-updates-testing-pending"}, fedoraEnv(t, h))
	if err != nil {
		t.Fatal(err)
	}
	m := out.(map[string]any)
	if len(m["builds"].([]any)) != 3 || m["release"] != 40 {
		t.Fatalf("builds under test = %v", m)
	}
	rel := m["releases"].(map[string]any)
	f39 := rel["f39"].(map[string]any)
	f41 := rel["f41"].(map[string]any)
	if f39["pyboth"].(map[string]any)["nvr"] != "pyboth-2.5-1.fc39" || f41["pythree"].(map[string]any)["nvr"] != "pythree-3.0-1.fc41" {
		t.Errorf("releases = %v", rel)
	}
	if f41["pyboth"].(map[string]any)["epoch"] != int64(1) {
		t.Errorf("the epoch must come along: %v", f41["pyboth"])
	}
	if _, ok := rel["f42"]; ok {
		t.Errorf("a release the hub does not know was listed")
	}
}

func TestKojiLatestByReleaseForAnUpdate(t *testing.T) {
	h := startFakeKoji(t)
	b := startFakeBodhi(t)
	env := fedoraEnv(t, h)
	env.Config.Bodhi.URL = b.URL()
	out, err := runDirective(t, "koji", map[string]any{"action": "latest_by_release", "item": "FEDORA-2024-0a1b2c3d4e", "item_type": "bodhi_update"}, env)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(map[string]any)
	if got := m["builds"].([]any); len(got) != 2 || got[0].(map[string]any)["nvr"] != "pyboth-2.0-1.fc40" {
		t.Errorf("builds of the update = %v", got)
	}
	if _, ok := m["releases"].(map[string]any)["f41"]; !ok {
		t.Errorf("releases = %v", m["releases"])
	}
	_, err = runDirective(t, "koji", map[string]any{"action": "latest_by_release", "item": "x", "item_type": "compose"}, env)
	if err == nil || !strings.Contains(err.Error(), `item_type "compose"`) {
		t.Errorf("unknown item_type gave %v", err)
	}
}
