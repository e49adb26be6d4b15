package checkout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
)

func writeTask(t testing.TB, dir, name string, files map[string]string) {
	t.Helper()
	for f, content := range files {
		p := filepath.Join(dir, name, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		perm := os.FileMode(0o644)
		if strings.HasSuffix(f, ".sh") {
			perm = 0o755
		}
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
}

func commitCount(t testing.TB, repo string) int {
	t.Helper()
	r, err := git.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}
	it, err := r.Log(&git.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := it.Next(); err != nil {
			break
		}
		n++
	}
	return n
}

func setup(t testing.TB) (tasks, mirror string, c *Checkout) {
	t.Helper()
	root := t.TempDir()
	tasks, mirror = filepath.Join(root, "tasks"), filepath.Join(root, "mirror")
	writeTask(t, tasks, "nvr", map[string]string{"runtask.yml": "name: nvr\n", "check.sh": "#!/bin/sh\necho v1\n", "lib/x.txt": "x"})
	if err := Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Mirrors: []string{mirror}, CacheDir: filepath.Join(root, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	return tasks, mirror, c
}

func TestSeedIsIdempotent(t *testing.T) {
	tasks, mirror, _ := setup(t)
	repo := filepath.Join(mirror, "nvr")
	if n := commitCount(t, repo); n != 1 {
		t.Fatalf("commits after first seed: %d", n)
	}
	if err := Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	if n := commitCount(t, repo); n != 1 {
		t.Fatalf("unchanged content made a commit: %d commits", n)
	}
	writeTask(t, tasks, "nvr", map[string]string{"check.sh": "#!/bin/sh\necho v2\n"})
	os.Remove(filepath.Join(tasks, "nvr", "lib", "x.txt"))
	if err := Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	if n := commitCount(t, repo); n != 2 {
		t.Fatalf("changed content: %d commits, want 2", n)
	}
	if _, err := os.Stat(filepath.Join(repo, "lib", "x.txt")); !os.IsNotExist(err) {
		t.Fatalf("removed file still in the mirror: %v", err)
	}
}

func TestGetChecksOutAndFollowsUpdates(t *testing.T) {
	tasks, mirror, c := setup(t)
	ctx := context.Background()
	dir, err := c.Get(ctx, "nvr", "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "check.sh"))
	if string(got) != "#!/bin/sh\necho v1\n" {
		t.Fatalf("check.sh: %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "check.sh")); fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("executable bit lost: %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "x.txt")); err != nil {
		t.Fatal(err)
	}
	again, err := c.Get(ctx, "nvr", "")
	if err != nil || again != dir {
		t.Fatalf("cached get: %s %v, want %s", again, err, dir)
	}
	old, _ := git.PlainOpen(filepath.Join(mirror, "nvr"))
	head, _ := old.Head()

	writeTask(t, tasks, "nvr", map[string]string{"check.sh": "#!/bin/sh\necho v2\n"})
	if err := Seed(tasks, mirror); err != nil {
		t.Fatal(err)
	}
	newDir, err := c.Get(ctx, "nvr", "master")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(filepath.Join(newDir, "check.sh"))
	if newDir == dir || string(got) != "#!/bin/sh\necho v2\n" {
		t.Fatalf("after update: %s %q", newDir, got)
	}
	// HEAD, resolved before the update, names the new commit now.
	if headDir, err := c.Get(ctx, "nvr", ""); err != nil || headDir != newDir {
		t.Fatalf("HEAD after update: %s %v, want %s", headDir, err, newDir)
	}
	// The old commit stays reachable by its hash.
	oldDir, err := c.Get(ctx, "nvr", head.Hash().String())
	if err != nil || oldDir != dir {
		t.Fatalf("old commit: %s %v", oldDir, err)
	}
	if _, err := c.Get(ctx, "nvr", "no-such-branch"); err == nil || !strings.Contains(err.Error(), "no-such-branch") {
		t.Fatalf("unknown ref: %v", err)
	}
}

func TestGetConcurrent(t *testing.T) {
	_, _, c := setup(t)
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	errs := make([]error, 8)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = c.Get(context.Background(), "nvr", "")
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("get %d: %s %v", i, dirs[i], errs[i])
		}
	}
}

func TestRefusesReposOutsideMirrors(t *testing.T) {
	_, mirror, _ := setup(t)
	outside := t.TempDir()
	writeTask(t, outside, "evil", map[string]string{"runtask.yml": "name: evil\n"})
	if err := Seed(outside, filepath.Join(outside, "m")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "m", "evil"), filepath.Join(mirror, "linked")); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Mirrors: []string{mirror}, CacheDir: t.TempDir(), Repos: map[string]string{
		"mapped": filepath.Join(outside, "m", "evil"),
		"dotdot": "../m/evil",
		"remote": "https://example.com/evil.git",
		"inside": "nvr",
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"mapped", "linked", "remote"} {
		if _, err := c.Get(ctx, name, ""); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: got %v, want ErrNotAllowed", name, err)
		}
	}
	if _, err := c.Get(ctx, "dotdot", ""); err == nil {
		t.Errorf("dotdot: no error")
	}
	for _, name := range []string{"../nvr", "a/b", "", ".hidden"} {
		if _, err := c.Get(ctx, name, ""); err == nil {
			t.Errorf("task name %q accepted", name)
		}
	}
	if _, err := c.GetRepo(ctx, filepath.Join(outside, "m", "evil"), ""); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("GetRepo outside: %v", err)
	}
	if dir, err := c.Get(ctx, "inside", ""); err != nil || !strings.Contains(dir, "trees") {
		t.Errorf("mapped inside the mirror: %s %v", dir, err)
	}
}

// BenchmarkGetCached is a checkout of a task already in the cache; the goal
// is at most 20 ms per op.
func BenchmarkGetCached(b *testing.B) {
	_, _, c := setup(b)
	ctx := context.Background()
	if _, err := c.Get(ctx, "nvr", ""); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, "nvr", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOldTreesArePruned: a task that changes often does not fill the
// cache: trees beyond the KeepTrees most recently used, and not used within
// TreeMaxAge, go when a new one is extracted.
func TestOldTreesArePruned(t *testing.T) {
	tasks, mirror, c := setup(t)
	ctx := context.Background()
	commit := func(n int) string {
		t.Helper()
		writeTask(t, tasks, "nvr", map[string]string{"check.sh": fmt.Sprintf("#!/bin/sh\necho v%d\n", n)})
		if err := Seed(tasks, mirror); err != nil {
			t.Fatal(err)
		}
		dir, err := c.Get(ctx, "nvr", "")
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	var dirs []string
	for n := 2; n <= 8; n++ {
		dirs = append(dirs, commit(n))
	}
	treesDir := filepath.Dir(dirs[0])
	count := func() int {
		ents, err := os.ReadDir(treesDir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
		return n
	}
	// All used within the last hour: all kept.
	if n := count(); n != 7 {
		t.Fatalf("%d trees after 7 commits used just now, want all 7", n)
	}
	// Make them old, the newest least old; then use the oldest again.
	for i, d := range dirs {
		when := time.Now().Add(-2*TreeMaxAge + time.Duration(i)*time.Minute)
		if err := os.Chtimes(d, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if again, err := c.Get(ctx, "nvr", filepath.Base(dirs[0])); err != nil || again != dirs[0] {
		t.Fatalf("old commit: %s %v", again, err)
	}
	newest := commit(9)
	if n := count(); n != KeepTrees {
		t.Fatalf("%d trees after pruning, want %d", n, KeepTrees)
	}
	// Kept: the new one, the one just used, and the 3 most recent others.
	for _, keep := range []string{newest, dirs[0], dirs[6], dirs[5], dirs[4]} {
		if _, err := os.Stat(filepath.Join(keep, "check.sh")); err != nil {
			t.Errorf("a recently used tree was pruned: %v", err)
		}
	}
	for _, gone := range dirs[1:4] {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("an old, unused tree was kept: %s %v", gone, err)
		}
	}
}

// A mirror updated by git itself (commits, refs packed into packed-refs,
// a branch moved back) is followed at once: what a name resolved to is
// remembered only while the files git reads it from stay as they were.
func TestGetFollowsRefsGitWrites(t *testing.T) {
	_, mirror, c := setup(t)
	repo := filepath.Join(mirror, "nvr")
	ctx := context.Background()
	gitRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	check := func(ref, want string) {
		t.Helper()
		dir, err := c.Get(ctx, "nvr", ref)
		if err != nil {
			t.Fatalf("get %q: %v", ref, err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "check.sh")); string(got) != want {
			t.Fatalf("get %q: check.sh %q, want %q", ref, got, want)
		}
	}
	v1 := "#!/bin/sh\necho v1\n"
	check("", v1)
	check("master", v1)
	for i, how := range []string{"loose", "packed", "moved back"} {
		want := fmt.Sprintf("#!/bin/sh\necho %s\n", how)
		switch how {
		case "packed":
			gitRun("pack-refs", "--all")
			os.WriteFile(filepath.Join(repo, "check.sh"), []byte(want), 0o755)
			gitRun("commit", "-qam", how)
			gitRun("pack-refs", "--all")
		case "moved back":
			gitRun("reset", "-q", "--hard", "HEAD~"+fmt.Sprint(i))
			want = v1
		default:
			os.WriteFile(filepath.Join(repo, "check.sh"), []byte(want), 0o755)
			gitRun("commit", "-qam", how)
		}
		check("", want)
		check("master", want)
	}
	gitRun("tag", "v1")
	check("v1", v1)
}
