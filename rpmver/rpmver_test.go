package rpmver

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

var cases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "2.0", -1},
	{"2.0.1", "2.0", 1},
	{"10", "9", 1},
	{"1.010", "1.9", 1},
	{"1.001", "1.1", 0},
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0b", -1},
	{"a", "1", -1},
	{"1", "a", 1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0^", "1.0", 1},
	{"1.0^git1", "1.0.1", -1},
	{"1.0^git1", "1.0^git2", -1},
	{"1.0~rc1^git1", "1.0~rc1", 1},
	{"1_0", "1.0", 0},
	{"fc39", "fc40", -1},
	{"1.fc39", "1.fc39.1", -1},
	{"5.4.1", "5.04.1", 0},
	{"", "", 0},
	{"", "1", -1},
}

func TestCompare(t *testing.T) {
	for _, c := range cases {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Compare(c.b, c.a); got != -c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// TestCompareAgainstRPM checks many pairs against rpm itself (its Lua
// rpm.vercmp), so our semantics cannot drift from the real tool.
func TestCompareAgainstRPM(t *testing.T) {
	rpmBin, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("rpm is needed to cross-check version comparison (apt-get install rpm): %v", err)
	}
	parts := []string{"1", "01", "2", "10", "a", "b", "rc1", "~rc1", "^git", "~", "^", ".", "_", "+", "fc40", "0"}
	var pairs [][2]string
	for i, x := range parts {
		for j, y := range parts {
			pairs = append(pairs, [2]string{"1" + x + y, "1" + y + x})
			pairs = append(pairs, [2]string{x + "." + y, parts[(i+j)%len(parts)] + y})
		}
	}
	var lua strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q)) print(' ') ", p[0], p[1])
	}
	out, err := exec.Command(rpmBin, "--eval", "%{lua: "+lua.String()+"}").Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(pairs) {
		t.Fatalf("rpm printed %d answers for %d pairs", len(got), len(pairs))
	}
	for k, p := range pairs {
		want := got[k]
		if c := Compare(p[0], p[1]); fmt.Sprint(c) != want {
			t.Errorf("Compare(%q, %q) = %d, rpm says %s", p[0], p[1], c, want)
		}
	}
}

func TestCompareEVR(t *testing.T) {
	old := EVR{Epoch: 0, Version: "2.0", Release: "1.fc40"}
	newer := EVR{Epoch: 1, Version: "1.0", Release: "1.fc40"}
	if CompareEVR(old, newer) != -1 || CompareEVR(newer, old) != 1 {
		t.Errorf("epoch 1 must beat any version with epoch 0")
	}
	if CompareEVR(EVR{Version: "1.0", Release: "2.fc40"}, EVR{Version: "1.0", Release: "10.fc40"}) != -1 {
		t.Errorf("release 2 must be older than release 10")
	}
}

func TestParseNVR(t *testing.T) {
	for in, want := range map[string]NVR{
		"xchat-0.5-1.fc20":          {Name: "xchat", EVR: EVR{Version: "0.5", Release: "1.fc20"}},
		"python-foo-bar-1.2-3.fc39": {Name: "python-foo-bar", EVR: EVR{Version: "1.2", Release: "3.fc39"}},
		"bash-2:5.2-1.fc40":         {Name: "bash", EVR: EVR{Epoch: 2, Version: "5.2", Release: "1.fc40"}},
		"2:bash-5.2-1.fc40":         {Name: "bash", EVR: EVR{Epoch: 2, Version: "5.2", Release: "1.fc40"}},
	} {
		got, err := ParseNVR(in)
		if err != nil || got != want {
			t.Errorf("ParseNVR(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "xchat", "xchat-1", "-1-2", "x-1-", "x-a:1-2", "x--2"} {
		if _, err := ParseNVR(bad); err == nil {
			t.Errorf("ParseNVR(%q) accepted a bad label", bad)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("error %q does not name the input", err)
		}
	}
}

func TestDistTag(t *testing.T) {
	if n, ok := DistTag("1.fc39"); !ok || n != 39 {
		t.Errorf("DistTag(1.fc39) = %d, %v", n, ok)
	}
	if n, ok := DistTag("3.fc40.1"); !ok || n != 40 {
		t.Errorf("DistTag(3.fc40.1) = %d, %v", n, ok)
	}
	if _, ok := DistTag("1.el9"); ok {
		t.Errorf("DistTag(1.el9) found a Fedora release")
	}
}

func FuzzCompare(f *testing.F) {
	for _, c := range cases {
		f.Add(c.a, c.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		x, y := Compare(a, b), Compare(b, a)
		if x != -y {
			t.Fatalf("Compare(%q,%q)=%d but Compare(%q,%q)=%d", a, b, x, b, a, y)
		}
		if Compare(a, a) != 0 {
			t.Fatalf("Compare(%q,%q) != 0", a, a)
		}
	})
}

func FuzzParseNVR(f *testing.F) {
	f.Add("xchat-0.5-1.fc20")
	f.Add("bash-2:5.2-1.fc40")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNVR(s)
		if err != nil {
			return
		}
		back, err := ParseNVR(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseNVR(%q) = %+v does not round-trip: %+v, %v", s, n, back, err)
		}
	})
}

func BenchmarkCompare(b *testing.B) {
	for b.Loop() {
		Compare("5.14.0-362.8.1.el9_3", "5.14.0-362.13.1.el9_3")
	}
}
