package trigger

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/contract"
)

const corpusDir = "../testdata/messages"

func loadCorpus(t testing.TB, name string) contract.Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatalf("corpus message %s: %v", name, err)
	}
	var m contract.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("corpus message %s: %v", name, err)
	}
	return m
}

// want is the expected message data (a subset of keys), or why the message
// is ignored.
type want struct {
	data    map[string]any
	ignored string
}

func data(msgType, item, itemType string, more ...any) want {
	d := map[string]any{"message_type": msgType, "item": item, "item_type": itemType}
	for i := 0; i+1 < len(more); i += 2 {
		d[more[i].(string)] = more[i+1]
	}
	return want{data: d}
}

func ign(why string) want { return want{ignored: why} }

var corpusWant = map[string]want{
	"bodhi-update-comment__1.json":          ign("not handled"),
	"bodhi-update-comment__2.json":          ign("not handled"),
	"bodhi-update-comment__3.json":          ign("not handled"),
	"bodhi-update-complete-testing__1.json": ign("not handled"),
	"bodhi-update-complete-testing__2.json": ign("not handled"),
	"bodhi-update-edit__1.json":             data(BodhiUpdateEdit, "tzdata-2014i-1.fc19", "bodhi_update", "builds", []any{"tzdata-2014i-1.fc19"}),
	"bodhi-update-edit__2.json":             data(BodhiUpdateEdit, "FEDORA-2019-7dbbb74a13", "bodhi_update"),
	"bodhi-update-edit__3.json": data(BodhiUpdateEdit, "FEDORA-2019-7dbbb74a13", "bodhi_update",
		"new_builds", []any{"tzdata-2014i-1.fc19"}, "removed_builds", []any{"tzdata-2014h-1.fc19"}),
	"bodhi-update-edit__4.json": data(BodhiUpdateEdit, "FEDORA-2017-e6d7184200", "bodhi_update",
		"builds", []any{"codec2-0.6-1.fc24", "freedv-1.2-1.fc24"}, "distgit_branch", "f24", "critpath", true),
	"bodhi-update-ready-for-testing__1.json": data(BodhiUpdateReadyForTesting, "FEDORA-2019-d64d0caab3", "bodhi_update",
		"builds", []any{"libselinux-2.8-6.fc29.x86_64", "libsepol-2.8-3.fc29.x86_64"}),
	"bodhi-update-ready-for-testing__2.json": data(BodhiUpdateReadyForTesting, "FEDORA-2019-d64d0caab3", "bodhi_update"),
	"bodhi-update-ready-for-testing__3.json": data(BodhiUpdateReadyForTesting, "FEDORA-2019-d64d0caab3", "bodhi_update"),
	"bodhi-update-ready-for-testing__4.json": data(BodhiUpdateReadyForTesting, "FEDORA-2023-1f3e17882f", "bodhi_update", "distgit_branch", "rawhide", "retrigger", false),
	"bodhi-update-ready-for-testing__5.json": data(BodhiUpdateReadyForTesting, "FEDORA-EPEL-2023-3b5f9c33da", "bodhi_update", "distgit_branch", "epel7", "retrigger", true),
	"bodhi-update-ready-for-testing__6.json": data(BodhiUpdateReadyForTesting, "FEDORA-2024-32f9547504", "bodhi_update",
		"builds", []any{"python-cryptography-43.0.0-3.eln142"}),
	"bodhi-update-request-testing__1.json": data(BodhiUpdateRequestTesting, "gnome-settings-daemon-3.6.1-1.fc18 control-center-3.6.1-1.fc18", "bodhi_update",
		"builds", []any{"gnome-settings-daemon-3.6.1-1.fc18", "control-center-3.6.1-1.fc18"}, "request", "testing"),
	"bodhi-update-request-testing__2.json": data(BodhiUpdateRequestTesting, "gnome-settings-daemon-3.6.1-1.fc18,control-center-3.6.1-1.fc18", "bodhi_update"),
	"bodhi-update-request-testing__3.json": data(BodhiUpdateRequestTesting, "foo", "bodhi_update", "builds", []any{}),
	"bodhi-update-request-testing__4.json": data(BodhiUpdateRequestTesting, "FEDORA-2019-f1ca3c00e5", "bodhi_update", "request", "testing"),
	"bodhi-update-request-testing__5.json": data(BodhiUpdateRequestTesting, "FEDORA-2019-f1ca3c00e5", "bodhi_update"),
	"bodhi-update-request-testing__6.json": data(BodhiUpdateRequestTesting, "FEDORA-2017-ea07abb5d5", "bodhi_update", "builds", []any{"systemd-231-14.fc24"}),
	"ci-legacy-centos-pipeline__1.json":    ign("not handled"),
	"ci-legacy-centos-pipeline__2.json":    ign("not handled"),
	"ci-legacy-centos-pipeline__3.json":    ign("not handled"),
	"distgit-git-receive__1.json": data(DistGitCommit, "rpms/valgrind#7a98f80d9b61ce167e4ef8129c81ed9284ecf4e1", "dist_git_commit",
		"namespace", "rpms", "repo", "valgrind", "branch", "master", "rev", "7a98f80d9b61ce167e4ef8129c81ed9284ecf4e1"),
	"distgit-git-receive__2.json": data(DistGitCommit, "rpms/valgrind#7a98f80d9b61ce167e4ef8129c81ed9284ecf4e1", "dist_git_commit"),
	"distgit-git-receive__3.json": data(DistGitCommit, "tests/ember#aa2df80f3d8dd217c7cbfe2d3451190028f3fe14", "dist_git_commit", "namespace", "tests"),
	"distgit-git-receive__4.json": data(DistGitCommit, "rpms/datanommer#66abdea4014eb2f0745fc38f86e20c7d7009237e", "dist_git_commit"),
	// The legacy topic carries repo and branch after git.receive.
	"distgit-git-receive__5.json": data(DistGitCommit, "rpms/valgrind#7a98f80d9b61ce167e4ef8129c81ed9284ecf4e1", "dist_git_commit"),
	"distgit-pagure-git-receive__1.json": data(DistGitCommit, "rpms/packit#ad0c308af91da45cf40b253cd82f07f63ea9cbbf", "dist_git_commit",
		"branch", "f36", "distgit_branch", "f36"),
	"distgit-pagure-pr__1.json":             ign("not handled"),
	"distgit-pagure-pr__2.json":             ign("not handled"),
	"distgit-pagure-pr__3.json":             ign("not handled"),
	"distgit-pagure-pr__4.json":             ign("not handled"),
	"distgit-pagure-pr__5.json":             ign("not handled"),
	"distgit-pagure-pr__6.json":             ign("not handled"),
	"distgit-pagure-project-forked__1.json": ign("not handled"),
	"greenwave-decision-update__1.json":     ign("not handled"),
	"koji-build-state-change__1.json": data(KojiBuildPackageCompleted, "ansible-1.8.3-1.el7", "koji_build",
		"name", "ansible", "version", "1.8.3", "release", "1.el7", "distgit_branch", "epel7"),
	"koji-build-state-change__2.json":  ign("build state 0 is not COMPLETE"),
	"koji-build-state-change__3.json":  ign("build state 0 is not COMPLETE"),
	"koji-build-state-change__4.json":  ign("build state 3 is not COMPLETE"),
	"koji-build-state-change__5.json":  ign("build state 4 is not COMPLETE"),
	"koji-build-state-change__6.json":  data(KojiBuildPackageCompleted, "packit-0.43.0-1.fc36", "koji_build", "distgit_branch", "f36"),
	"koji-build-state-change__7.json":  ign("build state 0 is not COMPLETE"),
	"koji-build-state-change__8.json":  data(KojiBuildPackageCompleted, "python-ogr-0.34.0-1.fc36", "koji_build"),
	"koji-build-state-change__9.json":  data(KojiBuildPackageCompleted, "python-ogr-0.34.0-1.el8", "koji_build", "distgit_branch", "epel8"),
	"koji-build-state-change__10.json": data(KojiBuildPackageCompleted, "python-ogr-0.34.0-1.fc36", "koji_build"),
	"koji-build-state-change__11.json": data(KojiBuildPackageCompleted, "chromium-80.0.3987.132-1.fc33", "koji_build", "distgit_branch", "f33"),
	"koji-build-state-change__12.json": ign("build state 2 is not COMPLETE"),
	"koji-tag__1.json": data(KojiTagChanged, "f18-updates-testing-pending", "koji_tag",
		"tag", "f18-updates-testing-pending", "name", "stage", "nvr", "stage-4.1.1-3.fc18"),
	"koji-tag__2.json":                    ign("not a -pending tag"),
	"koji-tag__3.json":                    data(KojiTagChanged, "f31-updates-pending", "koji_tag", "nvr", "http-parser-2.9.3-1.fc31"),
	"koji-task-state-change__1.json":      ign("not handled"),
	"koji-task-state-change__2.json":      ign("not handled"),
	"koji-task-state-change__3.json":      ign("not handled"),
	"koji-task-state-change__4.json":      ign("not handled"),
	"koji-task-state-change__5.json":      ign("not handled"),
	"koji-task-state-change__6.json":      ign("not handled"),
	"koji-task-state-change__7.json":      ign("not handled"),
	"koji-task-state-change__8.json":      ign("not handled"),
	"koji-untag__1.json":                  ign("not handled"),
	"koji-untag__2.json":                  ign("not handled"),
	"pungi-compose-status-change__1.json": ign("status STARTED is not finished"),
	"pungi-compose-status-change__2.json": data(ComposeCompleted, "Fedora-24-20151208.n.7", "compose"),
	"pungi-compose-status-change__3.json": ign("status TERMINATED is not finished"),
	"pungi-compose-status-change__4.json": ign("status STARTED is not finished"),
	"pungi-compose-status-change__5.json": ign("status DOOMED is not finished"),
	"pungi-compose-status-change__6.json": data(AtomicCompose, "Fedora-Atomic-25-20170206.0", "compose"),
	"pungi-compose-status-change__7.json": data(ComposeCompleted, "Fedora-Rawhide-20170206.n.0", "compose", "status", "FINISHED_INCOMPLETE"),
	"taskotron-result-new__1.json":        ign("not handled"),
	"taskotron-result-new__2.json":        ign("not handled"),
}

// TestNormaliseCorpus covers every file of the corpus (testdata/messages): a new file
// without an expectation fails the test.
func TestNormaliseCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus messages in %s (%v)", corpusDir, err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			w, ok := corpusWant[name]
			if !ok {
				t.Fatalf("no expectation for %s: add it to corpusWant", name)
			}
			got, err := Normalise(loadCorpus(t, name))
			if w.ignored != "" {
				if !errors.Is(err, ErrIgnored) || !strings.Contains(err.Error(), w.ignored) {
					t.Fatalf("want ignored (%s), got data %v, err %v", w.ignored, got["item"], err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalise: %v", err)
			}
			for k, v := range w.data {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			if _, ok := got["_msg"].(map[string]any); !ok {
				t.Errorf("_msg missing")
			}
		})
	}
	for name := range corpusWant {
		if !seen[name] {
			t.Errorf("expectation for %s, which is not in the corpus", name)
		}
	}
}

func msg(topic string, body map[string]any) contract.Message {
	return contract.Message{ID: "m1", Topic: topic, Body: body}
}

func TestNormaliseMalformed(t *testing.T) {
	cases := []struct {
		name string
		msg  contract.Message
		want string
	}{
		{"no topic", contract.Message{Body: map[string]any{}}, "no topic"},
		{"no body", contract.Message{Topic: "org.fedoraproject.prod.buildsys.tag"}, "no body"},
		{"build without new", msg("org.fedoraproject.prod.buildsys.build.state.change", map[string]any{"name": "x"}), `missing field "new"`},
		{"build new as string", msg("org.fedoraproject.prod.buildsys.build.state.change", map[string]any{"new": "1"}), `field "new": want a number`},
		{"build without version", msg("org.fedoraproject.prod.buildsys.build.state.change", map[string]any{"new": 1.0, "name": "x", "release": "1.fc40"}), `missing field "version"`},
		{"build name not a string", msg("org.fedoraproject.prod.buildsys.build.state.change", map[string]any{"new": 1.0, "name": 5.0, "version": "1", "release": "1"}), `field "name": want a string`},
		{"tag as list", msg("org.fedoraproject.prod.buildsys.tag", map[string]any{"tag": []any{"a"}}), `field "tag": want a string`},
		{"bodhi update not an object", msg("org.fedoraproject.prod.bodhi.update.request.testing", map[string]any{"update": "FEDORA-1"}), `field "update": want an object`},
		{"bodhi update without id", msg("org.fedoraproject.prod.bodhi.update.edit", map[string]any{"update": map[string]any{}}), "neither alias nor title"},
		{"bodhi builds wrong", msg("org.fedoraproject.prod.bodhi.update.edit", map[string]any{"update": map[string]any{"alias": "A", "builds": "x"}}), `field "builds": want a list`},
		{"git without commit", msg("org.fedoraproject.prod.git.receive", map[string]any{}), `missing field "commit"`},
		{"pagure push without end_commit", msg("org.fedoraproject.prod.pagure.git.receive", map[string]any{"repo": map[string]any{"name": "x"}, "branch": "f40"}), `missing field "end_commit"`},
		{"compose without id", msg("org.fedoraproject.prod.pungi.compose.status.change", map[string]any{"status": "FINISHED"}), `missing field "compose_id"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Normalise(c.msg)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want malformed (%s), got %v", c.want, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestNormaliseSpecialCases(t *testing.T) {
	build := func(more map[string]any) map[string]any {
		b := map[string]any{"new": 1.0, "name": "foo", "version": "1.0", "release": "1.fc40", "instance": "primary"}
		for k, v := range more {
			b[k] = v
		}
		return b
	}
	const topic = "org.fedoraproject.prod.buildsys.build.state.change"
	d, err := Normalise(msg(topic, build(map[string]any{"name": "cockpit-container"})))
	if err != nil || d["message_type"] != KojiBuildDockerCompleted || d["item_type"] != "docker_image" {
		t.Errorf("container build: %v %v", d, err)
	}
	if _, err := Normalise(msg(topic, build(map[string]any{"instance": "s390"}))); !errors.Is(err, ErrIgnored) {
		t.Errorf("secondary instance: want ignored, got %v", err)
	}
	d, err = Normalise(msg("io.pagure.prod.pagure.git.receive", map[string]any{"repo": map[string]any{"name": "taskotron", "namespace": "fedora-qa"}, "branch": "develop", "end_commit": "abc"}))
	if err != nil || d["message_type"] != PagureGitReceive || d["item"] != "fedora-qa/taskotron#abc" || d["item_type"] != "git_commit" {
		t.Errorf("pagure.io push: %v %v", d, err)
	}
	for rel, br := range map[string]string{"1.fc40": "f40", "2.el7": "epel7", "3.el6": "el6", "1.eln142": "rawhide", "1": ""} {
		if got := distgitBranch(rel); got != br {
			t.Errorf("distgitBranch(%q) = %q, want %q", rel, got, br)
		}
	}
}

func FuzzNormalise(f *testing.F) {
	f.Add([]byte(`{"topic":"org.fedoraproject.prod.buildsys.build.state.change","body":{"new":1,"name":"a","version":"1","release":"1.fc40"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m contract.Message
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		d, err := Normalise(m)
		if err == nil {
			if s, _ := d["item"].(string); s == "" {
				t.Fatalf("data without item: %v", d)
			}
			return
		}
		if !errors.Is(err, ErrIgnored) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error is neither ignored nor malformed: %v", err)
		}
		// The reason goes into a header and a log line: never the message's
		// values whole.
		if len(err.Error()) > 1024 || strings.Contains(err.Error(), "\n") {
			t.Fatalf("reason is %d bytes or several lines: %.300q", len(err.Error()), err)
		}
	})
}

// A field longer than any Koji, Bodhi or dist-git value makes the message
// malformed, with the field, its length and the limit in the reason; a
// field at its limit is fine.
func TestNormaliseFieldLimits(t *testing.T) {
	const (
		build  = "org.fedoraproject.prod.buildsys.build.state.change"
		tag    = "org.fedoraproject.prod.buildsys.tag"
		bodhi  = "org.fedoraproject.prod.bodhi.update.request.testing"
		git    = "org.fedoraproject.prod.git.receive"
		pagure = "org.fedoraproject.prod.pagure.git.receive"
		pungi  = "org.fedoraproject.prod.pungi.compose.status.change"
	)
	x := strings.Repeat
	kojiBody := func(k, v string) map[string]any {
		b := map[string]any{"new": 1.0, "name": "foo", "version": "1.0", "release": "1.fc40", "instance": "primary", "tag": "f40-updates-pending"}
		b[k] = v
		return b
	}
	update := func(k string, v any) map[string]any {
		u := map[string]any{"alias": "FEDORA-2024-1", "builds": []any{map[string]any{"nvr": "foo-1.0-1.fc40"}}, "release": map[string]any{"branch": "f40"}}
		u[k] = v
		return map[string]any{"update": u}
	}
	commit := func(k, v string) map[string]any {
		c := map[string]any{"repo": "foo", "branch": "f40", "rev": x("a", 40), "namespace": "rpms"}
		c[k] = v
		return map[string]any{"commit": c}
	}
	cases := []struct {
		name  string
		msg   contract.Message
		error string // "" when it is fine
	}{
		{"5 MiB name", msg(build, kojiBody("name", x("a", 5<<20))), `field "name" is 5242880 bytes long; an NVR is at most 255 bytes (Koji writes N-V-R.arch.rpm as one file name)`},
		{"long NVR", msg(build, kojiBody("version", x("1", 250))), "the NVR is 261 bytes long; an NVR is at most 255 bytes"},
		{"NVR at the limit", msg(build, kojiBody("name", x("a", 255-len("-1.0-1.fc40")))), ""},
		{"instance", msg(build, kojiBody("instance", x("i", 256))), `field "instance" is 256 bytes long; at most 255 bytes`},
		{"owner", msg(build, kojiBody("owner", x("o", 300))), `field "owner" is 300 bytes long`},
		{"tag", msg(tag, kojiBody("tag", x("t", 249)+"-pending")), `field "tag" is 257 bytes long; a Koji tag name is at most 256 bytes`},
		{"tag at the limit", msg(tag, kojiBody("tag", x("t", 248)+"-pending")), ""},
		{"tag NVR", msg(tag, kojiBody("release", x("r", 300))), `field "release" is 300 bytes long`},
		{"tag user", msg(tag, kojiBody("user", x("u", 256))), `field "user" is 256 bytes long`},
		{"alias", msg(bodhi, update("alias", "FEDORA-"+x("9", 58))), `field "alias" is 65 bytes long; a Bodhi update alias is at most 64 characters`},
		{"alias at the limit", msg(bodhi, update("alias", "FEDORA-"+x("9", 57))), ""},
		{"title", msg(bodhi, update("title", x("t", 64<<10+1))), `field "title" is 65537 bytes long`},
		{"build nvr", msg(bodhi, update("builds", []any{map[string]any{"nvr": x("n", 256)}})), `field "nvr" is 256 bytes long`},
		{"build string", msg(bodhi, update("builds", []any{x("n", 256)})), `field "builds" is 256 bytes long`},
		{"release branch", msg(bodhi, update("release", map[string]any{"branch": x("b", 256)})), `field "branch" is 256 bytes long; a branch name is at most 255 bytes`},
		{"new builds", msg(bodhi, map[string]any{"update": map[string]any{"alias": "A"}, "new_builds": []any{x("n", 256)}}), `field "new_builds" is 256 bytes long`},
		{"artifact id", msg(bodhi, map[string]any{"artifact": map[string]any{"id": x("a", 65)}}), `field "id" is 65 bytes long`},
		{"git branch", msg(git, commit("branch", x("b", 256))), `field "branch" is 256 bytes long`},
		{"git repo", msg(git, commit("repo", x("r", 256))), `field "repo" is 256 bytes long`},
		{"git rev", msg(git, commit("rev", x("a", 256))), `field "rev" is 256 bytes long`},
		{"git namespace", msg(git, commit("namespace", x("n", 256))), `field "namespace" is 256 bytes long`},
		{"pagure branch", msg(pagure, map[string]any{"repo": map[string]any{"name": "foo"}, "branch": x("b", 256), "end_commit": "abc"}), `field "branch" is 256 bytes long`},
		{"compose id", msg(pungi, map[string]any{"status": "FINISHED", "compose_id": x("c", 256)}), `field "compose_id" is 256 bytes long`},
		{"compose location", msg(pungi, map[string]any{"status": "FINISHED", "compose_id": "Fedora-40-1", "location": x("l", 4097)}), `field "location" is 4097 bytes long; a URL is at most 4096 bytes`},
		{"long topic", contract.Message{Topic: x("t", 1<<20), Body: map[string]any{}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Normalise(c.msg)
			if c.error == "" {
				if err != nil && !errors.Is(err, ErrIgnored) {
					t.Fatalf("want it read, got %.300v", err)
				}
				if err != nil && len(err.Error()) > 1024 {
					t.Fatalf("reason is %d bytes", len(err.Error()))
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.error) || len(err.Error()) > 1024 {
				t.Fatalf("want malformed (%s), got %.300v", c.error, err)
			}
		})
	}
}
