package trigger

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// jobSet renders jobs as sorted "task/arch" strings for comparison.
func jobSet(jobs []contract.Job) string {
	var s []string
	for _, j := range jobs {
		s = append(s, j.TaskName+"/"+j.Arch)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

func handle(t *testing.T, tr *Trigger, m contract.Message) []contract.Job {
	t.Helper()
	jobs, err := tr.Handle(t.Context(), m)
	if err != nil {
		t.Fatalf("Handle %s: %v", m.Topic, err)
	}
	return jobs
}

func TestDefaultRules(t *testing.T) {
	tr := New(Options{Arches: []string{"x86_64", "armhfp"}})
	build := loadCorpus(t, "koji-build-state-change__10.json")
	jobs := handle(t, tr, build)
	if got, want := jobSet(jobs), "nvr-format/armhfp nvr-format/x86_64 python-versions/noarch rpmlint/armhfp rpmlint/x86_64"; got != want {
		t.Fatalf("koji build jobs = %q, want %q", got, want)
	}
	for _, j := range jobs {
		if j.Item != "python-ogr-0.34.0-1.fc36" || j.ItemType != "koji_build" || j.UUID == "" || j.MsgID != build.ID || j.Created.IsZero() {
			t.Errorf("job fields: %+v", j)
		}
	}
	if jobs[0].UUID == jobs[1].UUID {
		t.Errorf("jobs share a uuid")
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__3.json"))); got != "upgradepath/noarch" {
		t.Errorf("f31-updates-pending: %q", got)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__1.json"))); got != "" {
		t.Errorf("updates-testing-pending makes no upgradepath: %q", got)
	}
	for _, name := range []string{"bodhi-update-request-testing__4.json", "bodhi-update-ready-for-testing__3.json"} {
		jobs := handle(t, tr, loadCorpus(t, name))
		if got := jobSet(jobs); got != "nvr-format/armhfp nvr-format/x86_64" || jobs[0].ItemType != "bodhi_update" {
			t.Errorf("%s: %q %+v", name, got, jobs)
		}
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "bodhi-update-edit__4.json"))); got != "" {
		t.Errorf("bodhi edit has no default rule: %q", got)
	}
}

// gitRepo makes a real git repository with files on branches.
func gitRepo(t *testing.T, dir string, branches map[string]map[string]string) {
	t.Helper()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("init", "-q", "-b", "main")
	run("commit", "-q", "--allow-empty", "-m", "root")
	names := make([]string, 0, len(branches))
	for b := range branches {
		names = append(names, b)
	}
	sort.Strings(names)
	for _, b := range names {
		run("checkout", "-q", "-B", b, "main")
		for path, content := range branches[b] {
			full := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		run("add", "-A")
		run("commit", "-q", "-m", "tasks on "+b)
	}
}

// The 2017 production rules, as written: rpmlint, rpmgrill and
// python-versions on every build, package tasks discovered in dist-git (a
// local mirror of it here), abicheck for critpath packages except a few.
func TestProductionRules2017(t *testing.T) {
	mirror := t.TempDir()
	gitRepo(t, filepath.Join(mirror, "rpms", "ansible"), map[string]map[string]string{
		"master": {"tests/smoke/runtask.yml": "name: ansible-smoke\n"},
		"epel7":  {"taskotron/check-a/runtask.yml": "name: check-a\n", "taskotron/check-b/runtask.yml": "name: check-b\n", "README": "x"},
	})
	gitRepo(t, filepath.Join(mirror, "rpms", "packit"), map[string]map[string]string{
		"master": {"tests/runtask.yml": "name: packit-tests\n"},
	})
	rules, err := LoadRules("testdata/rules-2017.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{
		Rules: rules, Arches: []string{"x86_64"}, Critpath: []string{"ansible", "kernel", "packit"},
		RepoRewrite: map[string]string{"https://src.fedoraproject.org/": mirror + "/"},
		GitCacheDir: t.TempDir(),
	})
	jobs := handle(t, tr, loadCorpus(t, "koji-build-state-change__1.json")) // ansible, el7
	if got, want := jobSet(jobs), "abicheck/x86_64 check-a/x86_64 check-b/x86_64 python-versions/x86_64 rpmgrill/x86_64 rpmlint/x86_64"; got != want {
		t.Fatalf("ansible jobs = %q, want %q", got, want)
	}
	for _, j := range jobs {
		if strings.HasPrefix(j.TaskName, "check-") && (j.GitRepo != "https://src.fedoraproject.org/rpms/ansible" || j.GitBranch != "epel7") {
			t.Errorf("discovered job repo/branch: %+v", j)
		}
	}
	// packit has no f36 branch: the fallback master is used.
	jobs = handle(t, tr, loadCorpus(t, "koji-build-state-change__6.json"))
	if got, want := jobSet(jobs), "abicheck/x86_64 packit-tests/x86_64 python-versions/x86_64 rpmgrill/x86_64 rpmlint/x86_64"; got != want {
		t.Fatalf("packit jobs = %q, want %q", got, want)
	}
	// No dist-git repo at all: the static tasks still run.
	jobs = handle(t, tr, loadCorpus(t, "koji-build-state-change__10.json"))
	if got, want := jobSet(jobs), "python-versions/x86_64 rpmgrill/x86_64 rpmlint/x86_64"; got != want {
		t.Fatalf("python-ogr jobs = %q, want %q", got, want)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__1.json"))); got != "rpmdeplint/x86_64" {
		t.Errorf("updates-testing-pending: %q", got)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__3.json"))); got != "rpmdeplint/x86_64 upgradepath/x86_64" {
		t.Errorf("updates-pending: %q", got)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "pungi-compose-status-change__6.json"))); got != "fedora-cloud-tests/x86_64 upstream-atomic/x86_64" {
		t.Errorf("atomic compose: %q", got)
	}
	modules := msg("org.fedoraproject.prod.git.receive", map[string]any{"commit": map[string]any{"repo": "django", "branch": "master", "rev": "abc", "namespace": "modules"}})
	if got := jobSet(handle(t, tr, modules)); got != "check_modulemd/x86_64" {
		t.Errorf("modules commit: %q", got)
	}
}

func TestProductionRules2020(t *testing.T) {
	rules, err := LoadRules("testdata/rules-2020.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{Rules: rules, Arches: []string{"x86_64", "armhfp"}, Critpath: []string{"python-ogr", "kernel"}})
	if got, want := jobSet(handle(t, tr, loadCorpus(t, "koji-build-state-change__10.json"))),
		"abicheck/x86_64 python-versions/noarch rpmgrill/noarch rpmlint/armhfp rpmlint/x86_64"; got != want {
		t.Errorf("critpath build = %q, want %q", got, want)
	}
	if got, want := jobSet(handle(t, tr, loadCorpus(t, "koji-build-state-change__11.json"))),
		"python-versions/noarch rpmgrill/noarch rpmlint/armhfp rpmlint/x86_64"; got != want {
		t.Errorf("chromium = %q, want %q", got, want)
	}
	kernel := msg("org.fedoraproject.prod.buildsys.build.state.change", map[string]any{"new": 1.0, "name": "kernel", "version": "6.1", "release": "1.fc40", "instance": "primary"})
	if got := jobSet(handle(t, tr, kernel)); strings.Contains(got, "abicheck") {
		t.Errorf("kernel is in $nin: %q", got)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__1.json"))); got != "" {
		t.Errorf("rpmdeplint is commented out: %q", got)
	}
	if got := jobSet(handle(t, tr, loadCorpus(t, "koji-tag__3.json"))); got != "upgradepath/noarch" {
		t.Errorf("updates-pending: %q", got)
	}
}

func TestRulesErrorsNameTheLine(t *testing.T) {
	cases := []struct{ text, want string }{
		{"- when: {message_type: X}\n  do:\n    - {tasks: [a]}\n- when:\n    name: {$inn: [a]}\n  do: [{tasks: [b]}]\n", "r.yml:5: unknown operator $inn"},
		{"- when: {message_type: X}\n  do:\n    - {taks: [a]}\n", `r.yml:3: unknown action key "taks"`},
		{"- when: {message_type: X}\n", "r.yml:1: rule has no do:"},
		{"- do: [{tasks: [a]}]\n", "r.yml:1: rule has no when:"},
		{"- when: {message_type: X}\n  do:\n    - {tasks: rpmlint}\n", "r.yml:3: tasks wants a list of names"},
		{"- when:\n    tag: {$regex: '/^f[0-9/'}\n  do: [{tasks: [a]}]\n", "r.yml:2: regex"},
		{"- when: {a: b}\n  do: [{tasks: [a]}]\n  then: x\n", `r.yml:3: unknown rule key "then"`},
		{"- when: {a: b\n  do: [{tasks: [a]}]\n", "r.yml:1: did not find expected ',' or '}'"},
		// YAML mistakes are named at their own line, not where the block began.
		{"- when: {message_type: A}\n  do:\n    - tasks: [a]\n- when: {message_type: B}\n  do:\n    - tasks: [b]\n   bad: x\n", "r.yml:7: did not find expected key"},
		{"- when: {message_type: A}\n  do:\n    - {tasks: [rpmlint\n", "r.yml:3: did not find expected ',' or ']'"},
		{"- when: {message_type: A}\n  do:\n    - tasks: [a]\n- when: {message_type: B}\n  do:\n\t- tasks: [b]\n", "r.yml:6: found character that cannot start any token"},
		{"- when: {message_type: A}\n  do:\n    - {discover: {repo: x,\n                  branch: y}}\n- when: {message_type: B}\n  do: [{tasks: [b]]\n", "r.yml:6: did not find expected ',' or '}'"},
		{"- when: {name: ${bad name}}\n  do: [{tasks: [a]}]\n", "r.yml:1: bad variable name"},
		{"when: {a: b}\n", "r.yml:1: want a list of rules"},
		{"- when: {a: {$exists: maybe}}\n  do: [{tasks: [a]}]\n", "r.yml:1: $exists wants true or false"},
		{"- when: {a: b}\n  do: [{discover: {branch: x}}]\n", "r.yml:2: discover needs repo:"},
	}
	for _, c := range cases {
		_, err := ParseRules("r.yml", []byte(c.text), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rules %q: got %v, want %q", c.text, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

func TestReloadKeepsRulesOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("- when: {message_type: KojiTagChanged}\n  do: [{tasks: [first]}]\n")
	tr := New(Options{})
	if err := tr.Reload(path, nil); err != nil {
		t.Fatal(err)
	}
	tag := loadCorpus(t, "koji-tag__3.json")
	if got := jobSet(handle(t, tr, tag)); got != "first/x86_64" {
		t.Fatalf("after reload: %q", got)
	}
	write("- when: {message_type: KojiTagChanged}\n  do: [{tasks: [second]}]\n- when: {$bogus: 1}\n  do: [{tasks: [x]}]\n")
	err := tr.Reload(path, nil)
	if err == nil || !strings.Contains(err.Error(), path+":3: unknown operator $bogus") {
		t.Fatalf("bad reload: %v", err)
	}
	if got := jobSet(handle(t, tr, tag)); got != "first/x86_64" {
		t.Fatalf("bad reload changed the rules: %q", got)
	}
}

func TestQueryOperators(t *testing.T) {
	data := map[string]any{
		"message_type": "KojiBuildPackageCompleted", "name": "kernel", "tag": "f40-updates-pending",
		"builds": []any{"a-1-1", "b-1-1"}, "n": 3.0,
		"_msg":          map[string]any{"instance": "primary", "request": []any{"git+https://x", "f40"}},
		"critpath_pkgs": []any{"kernel", "glibc"},
	}
	cases := []struct {
		when string
		want bool
	}{
		{"{name: kernel}", true},
		{"{name: glibc}", false},
		{"{builds: b-1-1}", true},
		{"{name: {$in: [glibc, kernel]}}", true},
		{"{name: {$nin: [glibc, kernel]}}", false},
		{"{missing: {$nin: [x]}}", true},
		{"{name: {$in: ${critpath_pkgs}}}", true},
		{"{tag: {$regex: '/^f[0-9]{2}-updates-pending$$/'}}", true},
		{"{tag: {$regex: '/^F[0-9]{2}-UPDATES/i'}}", true},
		{"{tag: {$regex: '^f[0-9]{2}-updates-testing', $options: ''}}", false},
		{"{tag: {$not: {$regex: '-testing-'}}}", true},
		{"{tag: {$not: '/pending$$/'}}", false},
		{"{_msg.instance: primary}", true},
		{"{_msg.request.1: f40}", true},
		{"{_msg.instance: {$exists: true}}", true},
		{"{_msg.owner: {$exists: false}}", true},
		{"{$and: [{name: kernel}, {tag: {$regex: pending}}]}", true},
		{"{$or: [{name: glibc}, {n: 3}]}", true},
		{"{$or: [{name: glibc}, {n: 4}]}", false},
		{"{$not: {name: kernel}}", false},
		{"{$nor: [{name: glibc}]}", true},
		{"{n: {$gt: 2, $lte: 3}}", true},
		{"{builds: {$size: 2}}", true},
		{"{name: {$ne: kernel}}", false},
		{"{name: '${name}'}", true},
		{"{tag: 'f40-${name}'}", false},
	}
	for _, c := range cases {
		r, err := ParseRules("q", []byte("- when: "+c.when+"\n  do: [{tasks: [t]}]\n"), nil)
		if err != nil {
			t.Errorf("%s: %v", c.when, err)
			continue
		}
		got, checks, err := match(r.rules[0].when, data, resolver{data: data})
		if err != nil {
			t.Errorf("%s: %v", c.when, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s = %v, want %v (%v)", c.when, got, c.want, checks)
		}
	}
}

func TestTemplateEscapes(t *testing.T) {
	r, err := ParseRules("t", []byte("- when: {name: 'cost$$5', other: '$${name}'}\n  do: [{tasks: ['${name}-check']}]\n"), map[string]any{"unused": 1})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"name": "cost$5", "other": "${name}"}
	ok, checks, err := match(r.rules[0].when, data, resolver{data: data})
	if err != nil || !ok {
		t.Fatalf("escaped $ did not match: %v %v", checks, err)
	}
	names, err := resolver{data: data}.names(r.rules[0].do[0].tasks, "tasks")
	if err != nil || len(names) != 1 || names[0] != "cost$5-check" {
		t.Fatalf("templated task name: %v %v", names, err)
	}
	// An unknown variable makes that rule not match, and says so.
	r, err = ParseRules("t", []byte("- when: {name: {$in: ${nope}}}\n  do: [{tasks: [x]}]\n- when: {message_type: KojiTagChanged}\n  do: [{tasks: [y]}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{Rules: r})
	ex, err := tr.Explain(loadCorpus(t, "koji-tag__3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Rules[0].Matched || !strings.Contains(ex.Rules[0].Error, "t:1: unknown variable ${nope}") {
		t.Errorf("rule 0: %+v", ex.Rules[0])
	}
	if !ex.Rules[1].Matched || jobSet(ex.Jobs) != "y/x86_64" {
		t.Errorf("rule 1: %+v jobs %v", ex.Rules[1], ex.Jobs)
	}
}

func TestExplain(t *testing.T) {
	rules, err := LoadRules("testdata/rules-2020.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{Rules: rules, Critpath: []string{"glibc"}, Now: func() time.Time { return time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC) }})
	ex, err := tr.Explain(loadCorpus(t, "koji-build-state-change__11.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Data["item"] != "chromium-80.0.3987.132-1.fc33" || len(ex.Rules) != 3 {
		t.Fatalf("explanation: %+v", ex)
	}
	if !ex.Rules[0].Matched || ex.Rules[1].Matched || ex.Rules[2].Matched {
		t.Errorf("matched: %v %v %v", ex.Rules[0].Matched, ex.Rules[1].Matched, ex.Rules[2].Matched)
	}
	why := strings.Join(ex.Rules[1].Why, "\n")
	if !strings.Contains(why, `name $in ["glibc"] (got "chromium"): no`) {
		t.Errorf("why rule 1 did not match: %s", why)
	}
	if ex.Rules[1].Line != 12 {
		t.Errorf("rule 1 line = %d", ex.Rules[1].Line)
	}
	if got := jobSet(ex.Jobs); got != "python-versions/noarch rpmgrill/noarch rpmlint/x86_64" {
		t.Errorf("jobs %q", got)
	}
	ex, err = tr.Explain(loadCorpus(t, "koji-untag__1.json"))
	if err != nil || !strings.Contains(ex.Ignored, "not handled") || len(ex.Jobs) != 0 {
		t.Errorf("ignored message: %+v %v", ex, err)
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("- when: {message_type: X, name: {$in: ${critpath_pkgs}}}\n  do: [{tasks: [a], arches: [noarch]}]\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseRules("fuzz", raw, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		data := map[string]any{"message_type": "X", "name": "a", "critpath_pkgs": []any{"a"}, "item": "i", "item_type": "koji_build"}
		for _, ru := range r.rules {
			_, _, _ = match(ru.when, data, resolver{data: data})
		}
	})
}

// The critpath list is refreshed by a cron job: a reload (SIGHUP) reads it
// again, for the rules' ${critpath_pkgs} and the message data; a bad list
// changes nothing.
func TestSetupReloadReadsCritpathAgain(t *testing.T) {
	dir := t.TempDir()
	crit := filepath.Join(dir, "critpath")
	rulesPath := filepath.Join(dir, "rules.yml")
	os.WriteFile(crit, []byte("kernel\n"), 0o644)
	os.WriteFile(rulesPath, []byte("- when: {message_type: KojiBuildPackageCompleted, name: {$in: ${critpath_pkgs}}}\n  do: [{tasks: [abicheck]}]\n"), 0o644)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Trigger.CritpathFile = crit
	cfg.Trigger.Rules = rulesPath
	setup, err := FromConfig(t.Context(), cfg, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	tr := New(setup.Options)
	chromium := loadCorpus(t, "koji-build-state-change__11.json")
	if got := jobSet(handle(t, tr, chromium)); got != "" {
		t.Fatalf("chromium is not on the critpath yet: %q", got)
	}
	os.WriteFile(crit, []byte("kernel\nchromium\n"), 0o644)
	if err := setup.Reload(tr); err != nil {
		t.Fatal(err)
	}
	if got := jobSet(handle(t, tr, chromium)); got != "abicheck/x86_64" {
		t.Fatalf("after the critpath list was refreshed: %q", got)
	}
	ex, err := tr.Explain(chromium)
	if err != nil || fmt.Sprint(ex.Data["critpath_pkgs"]) != "[kernel chromium]" {
		t.Fatalf("message data critpath_pkgs after reload: %v %v", ex.Data["critpath_pkgs"], err)
	}
	os.WriteFile(crit, []byte("kernel\ntwo names\n"), 0o644)
	if err := setup.Reload(tr); err == nil || !strings.Contains(err.Error(), crit+":2") {
		t.Fatalf("bad critpath list: %v", err)
	}
	if got := jobSet(handle(t, tr, chromium)); got != "abicheck/x86_64" {
		t.Fatalf("a bad critpath list changed what is in use: %q", got)
	}
}
