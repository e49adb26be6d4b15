package directives

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestYumRepoInfo(t *testing.T) {
	env := fedoraEnv(t, nil)
	out, err := runDirective(t, "yumrepoinfo", map[string]any{"koji_tag": "f40-updates-testing-pending", "arch": []any{"x86_64", "i686"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://download.fedoraproject.org/pub/fedora/linux"
	want := map[string]any{
		"f40-updates-testing": map[string]any{"x86_64": base + "/updates/testing/40/Everything/x86_64", "i686": base + "/updates/testing/40/Everything/i386"},
		"f40-updates":         map[string]any{"x86_64": base + "/updates/40/Everything/x86_64", "i686": base + "/updates/40/Everything/i386"},
		"f40":                 map[string]any{"x86_64": base + "/releases/40/Everything/x86_64/os", "i686": base + "/releases/40/Everything/i386/os"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %v\nwant %v", out, want)
	}
	for _, tag := range []string{"rawhide", "f42"} {
		out, err := runDirective(t, "yumrepoinfo", map[string]any{"koji_tag": tag, "arch": "x86_64"}, env)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.(map[string]any)["rawhide"]; !reflect.DeepEqual(got, map[string]any{"x86_64": base + "/development/rawhide/Everything/x86_64/os"}) {
			t.Errorf("%s: got %v", tag, out)
		}
	}
	if _, err := runDirective(t, "yumrepoinfo", map[string]any{"koji_tag": "f12", "arch": "x86_64"}, env); err == nil || !strings.Contains(err.Error(), "f12: no such repo") {
		t.Errorf("unknown tag gave %v", err)
	}
}

func TestYumRepoInfoBadFile(t *testing.T) {
	env := fedoraEnv(t, nil)
	p := filepath.Join(t.TempDir(), "yumrepoinfo.conf")
	for body, want := range map[string]string{
		"[f40\nurl = x\n":         ":1: bad section header",
		"url = x\n":               ":1: key outside any section",
		"[f40]\nnonsense\n":       ":2: want key = value",
		"[f40]\nurl = %(nope)s\n": "%(nope)s is not defined",
		"[DEFAULT]\na = %(b)s\nb = %(a)s\n[f40]\nurl = %(a)s\n": "interpolation too deep",
	} {
		os.WriteFile(p, []byte(body), 0o644)
		_, err := runDirective(t, "yumrepoinfo", map[string]any{"koji_tag": "f40", "arch": "x86_64", "file": p}, env)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: got %v, want %q naming the file", body, err, want)
		}
	}
}

func FuzzParseYumRepoInfo(f *testing.F) {
	raw, err := os.ReadFile("../fixtures/koji/yumrepoinfo.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(raw), "f40-updates", "x86_64")
	f.Fuzz(func(t *testing.T, body, tag, arch string) {
		c, err := ParseYumRepoInfo([]byte(body), "fuzz.conf")
		if err != nil {
			return
		}
		if s := c.find(tag); s != "" {
			c.get(s, "url", arch)
			c.get(s, "parent", "")
		}
	})
}
