package koji

import (
	"slices"
	"testing"
)

func TestSelection(t *testing.T) {
	rpms := []RPM{
		{Name: "tinyhello", Arch: "x86_64"}, {Name: "tinyhello", Arch: "i686"}, {Name: "tinyhello-doc", Arch: "noarch"},
		{Name: "tinyhello-debuginfo", Arch: "x86_64"}, {Name: "tinyhello", Arch: "src"}, {Name: "tinyhello", Arch: "aarch64"},
	}
	pick := func(s Selection) []string {
		var out []string
		for _, r := range rpms {
			if s.Keep(r) {
				out = append(out, r.Name+"."+r.Arch)
			}
		}
		return out
	}
	for _, c := range []struct {
		name          string
		arch, exclude []string
		src, debug    bool
		want          []string
	}{
		{"x86_64 adds noarch", []string{"x86_64"}, nil, false, false, []string{"tinyhello.x86_64", "tinyhello-doc.noarch"}},
		{"i386 expands to i686", []string{"i386"}, nil, false, false, []string{"tinyhello.i686", "tinyhello-doc.noarch"}},
		{"empty list takes no binaries", []string{}, nil, true, false, []string{"tinyhello.src"}},
		{"all with src and debuginfo", []string{"all"}, nil, true, true, []string{"tinyhello.x86_64", "tinyhello.i686", "tinyhello-doc.noarch", "tinyhello-debuginfo.x86_64", "tinyhello.src", "tinyhello.aarch64"}},
		{"all excluding noarch and i386", []string{"all"}, []string{"noarch", "i386"}, false, false, []string{"tinyhello.x86_64", "tinyhello.aarch64"}},
		{"debuginfo on request", []string{"x86_64"}, []string{"noarch"}, false, true, []string{"tinyhello.x86_64", "tinyhello-debuginfo.x86_64"}},
	} {
		got := pick(NewSelection(c.arch, c.exclude, c.src, c.debug))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if h := NewSelection([]string{"i386"}, nil, true, false).HubArches(); !slices.Equal(h, []string{"i386", "i486", "i586", "i686", "noarch", "src"}) {
		t.Errorf("HubArches = %v", h)
	}
}

func TestPackageURLs(t *testing.T) {
	c := New("https://koji.example.org/kojihub", "https://kojipkgs.example.org/packages", Options{})
	b := Build{Name: "tinyhello", Version: "1.0", Release: "1.fc40", Volume: "DEFAULT"}
	r := RPM{Name: "tinyhello-doc", Version: "1.0", Release: "1.fc40", Arch: "noarch"}
	if got := c.RPMURL(b, r); got != "https://kojipkgs.example.org/packages/tinyhello/1.0/1.fc40/noarch/tinyhello-doc-1.0-1.fc40.noarch.rpm" {
		t.Errorf("RPMURL = %s", got)
	}
	b.Volume = "fedora_koji_archive02"
	if got := c.BuildLogURL(b, "x86_64"); got != "https://kojipkgs.example.org/vol/fedora_koji_archive02/packages/tinyhello/1.0/1.fc40/data/logs/x86_64/build.log" {
		t.Errorf("BuildLogURL on a volume = %s", got)
	}
}
