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
	})
}
