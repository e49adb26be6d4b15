package regression

import (
	"testing"

	"github.com/taskotron-go/taskotron/rpmver"
)

func nvr(t *testing.T, s string) rpmver.NVR {
	t.Helper()
	n, err := rpmver.ParseNVR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWorse(t *testing.T) {
	order := []string{Passed, Info, Failed, NeedsInspection}
	for i, a := range order {
		for j, b := range order {
			if got := Worse(a, b); got != (i > j) {
				t.Errorf("Worse(%s, %s) = %v", a, b, got)
			}
		}
		for _, infra := range []string{Aborted, Crashed, "SOMETHING"} {
			if Worse(a, infra) || Worse(infra, a) {
				t.Errorf("%s against %s counts as a regression", a, infra)
			}
		}
	}
	if !Infrastructure(Aborted) || !Infrastructure(Crashed) || Infrastructure(Failed) {
		t.Error("Infrastructure: ABORTED and CRASHED only")
	}
}

func TestBuild(t *testing.T) {
	if n, ok := Build("xchat-1:0.5-1.fc20", PackageType); !ok || n.Name != "xchat" || n.Epoch != 1 {
		t.Errorf("Build koji_build: %+v %v", n, ok)
	}
	// An update id looks like an NVR; its type says it is not one.
	if _, ok := Build("FEDORA-2024-32f9547504", "bodhi_update"); ok {
		t.Error("a Bodhi update counted as a build")
	}
	if _, ok := Build("notanvr", PackageType); ok {
		t.Error("a malformed item counted as a build")
	}
}

func TestPreviousAndOrder(t *testing.T) {
	var builds []rpmver.NVR
	for _, s := range []string{"foo-1.0-1.fc40", "foo-1.0~rc1-1.fc40", "foo-1:0.9-1.fc40", "foo-2.0-1.fc40", "bar-5-1", "foo-1.0^git1-1.fc40", "foo-devel-9-1"} {
		builds = append(builds, nvr(t, s))
	}
	NewestFirst(builds)
	var got []string
	for _, b := range builds {
		got = append(got, b.String())
	}
	// The epoch wins over every version; '~' sorts before the release, '^' after.
	want := []string{"bar-5-1", "foo-1:0.9-1.fc40", "foo-2.0-1.fc40", "foo-1.0^git1-1.fc40", "foo-1.0-1.fc40", "foo-1.0~rc1-1.fc40", "foo-devel-9-1"}
	if len(got) != len(want) {
		t.Fatalf("NewestFirst: %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("NewestFirst: %v, want %v", got, want)
		}
	}
	cases := map[string]string{
		"foo-1.0-1.fc40":      "foo-1.0~rc1-1.fc40",
		"foo-1.0^git1-1.fc40": "foo-1.0-1.fc40",
		"foo-2.0-1.fc40":      "foo-1.0^git1-1.fc40",
		"foo-1:0.9-1.fc40":    "foo-2.0-1.fc40",
		"foo-1.0~rc1-1.fc40":  "",
		"foo-devel-9-1":       "", // another package, though "foo-" starts it
		"foo-1.5-1.fc40":      "foo-1.0^git1-1.fc40",
	}
	for b, want := range cases {
		prev, ok := Previous(nvr(t, b), builds)
		if want == "" {
			if ok {
				t.Errorf("Previous(%s) = %s, want none", b, prev)
			}
			continue
		}
		if !ok || prev.String() != want {
			t.Errorf("Previous(%s) = %s %v, want %s", b, prev, ok, want)
		}
	}
}

func TestFind(t *testing.T) {
	rpmlint := Key{"dist.rpmlint", "x86_64"}
	depcheck := Key{"dist.depcheck", "x86_64"}
	latest := []Result{
		{ID: 1, Build: nvr(t, "foo-1.0-1"), Key: rpmlint, Outcome: Passed},
		{ID: 2, Build: nvr(t, "foo-1.0-1"), Key: depcheck, Outcome: Failed},
		{ID: 3, Build: nvr(t, "foo-1.1-1"), Key: rpmlint, Outcome: Failed},  // regression
		{ID: 4, Build: nvr(t, "foo-1.1-1"), Key: depcheck, Outcome: Passed}, // better
		{ID: 5, Build: nvr(t, "foo-1.2-1"), Key: Key{"dist.rpmlint", "i386"}, Outcome: Failed},
		{ID: 6, Build: nvr(t, "foo-1.2-1"), Key: depcheck, Outcome: Crashed}, // infrastructure
		// foo-1.3 ran only depcheck; its previous build is foo-1.2, whatever ran there.
		// foo-1.3 is compared with foo-1.2, which did not run rpmlint on x86_64.
		{ID: 7, Build: nvr(t, "foo-1.3-1"), Key: rpmlint, Outcome: Info},
		// Were '~' not before the release, 1.0~rc1 would follow 1.0 and regress from it.
		{ID: 8, Build: nvr(t, "foo-1.0~rc1-1"), Key: rpmlint, Outcome: Failed},
		// The epoch makes 1:0.1 the newest build, after 1.3.
		{ID: 9, Build: nvr(t, "foo-1:0.1-1"), Key: rpmlint, Outcome: Failed},
		{ID: 10, Build: nvr(t, "bar-2-1"), Key: rpmlint, Outcome: Failed},
	}
	got := Find(latest)
	var pairs [][2]int64
	for _, p := range got {
		pairs = append(pairs, [2]int64{p.Result.ID, p.Previous.ID})
	}
	if len(pairs) != 2 || pairs[0] != [2]int64{3, 1} || pairs[1] != [2]int64{9, 7} {
		t.Errorf("Find: regressions (result, previous) %v, want [[3 1] [9 7]]", pairs)
	}
}
