package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/taskotron-go/taskotron/contract"
)

// ErrIgnored wraps the reason a message is skipped on purpose: a topic the
// trigger does not handle, or a state it does not schedule for.
var ErrIgnored = errors.New("ignored")

// ErrMalformed wraps the reason a message of a handled topic cannot be read.
var ErrMalformed = errors.New("malformed message")

func ignored(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrIgnored, fmt.Sprintf(format, a...))
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Message types (reference §3.1; the Bodhi and compose names are ours).
const (
	KojiBuildPackageCompleted  = "KojiBuildPackageCompleted"
	KojiBuildDockerCompleted   = "KojiBuildDockerCompleted"
	KojiTagChanged             = "KojiTagChanged"
	BodhiUpdateRequestTesting  = "BodhiUpdateRequestTesting"
	BodhiUpdateReadyForTesting = "BodhiUpdateReadyForTesting"
	BodhiUpdateEdit            = "BodhiUpdateEdit"
	DistGitCommit              = "DistGitCommit"
	PagureGitReceive           = "PagureGitReceive"
	AtomicCompose              = "AtomicCompose"
	CloudCompose               = "CloudCompose"
	ComposeCompleted           = "ComposeCompleted"
)

// Koji build states carried in build.state.change new/old.
const kojiComplete = 1

// Normalise turns a bus message into the data rules see (design §2.2). It
// returns an error wrapping ErrIgnored for messages skipped on purpose and
// one wrapping ErrMalformed when a handled message lacks what it needs.
func Normalise(msg contract.Message) (contract.MessageData, error) {
	topic := msg.Topic
	if topic == "" {
		return nil, malformed("no topic")
	}
	if msg.Body == nil {
		return nil, malformed("%s: no body", topic)
	}
	b := body(msg.Body)
	var (
		data contract.MessageData
		err  error
	)
	switch {
	case hasSuffix(topic, "buildsys.build.state.change"):
		data, err = kojiBuild(b)
	case hasSuffix(topic, "buildsys.tag"):
		data, err = kojiTag(b)
	case hasSuffix(topic, "bodhi.update.request.testing"):
		data, err = bodhiUpdate(b, BodhiUpdateRequestTesting)
	case hasSuffix(topic, "bodhi.update.status.testing.koji-build-group.build.complete"):
		data, err = bodhiUpdate(b, BodhiUpdateReadyForTesting)
	case hasSuffix(topic, "bodhi.update.edit"):
		data, err = bodhiUpdate(b, BodhiUpdateEdit)
	case hasSuffix(topic, "pagure.git.receive"):
		data, err = pagurePush(b, topic)
	case isDistGitReceive(topic):
		data, err = distGitPush(b)
	case hasSuffix(topic, "pungi.compose.status.change"):
		data, err = compose(b)
	default:
		return nil, ignored("topic %s is not handled", topic)
	}
	if err != nil {
		if errors.Is(err, ErrIgnored) || errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("%s: %w", topic, err)
		}
		return nil, fmt.Errorf("%s: %w: %v", topic, ErrMalformed, err)
	}
	data["_msg"] = map[string]any(msg.Body)
	return data, nil
}

// hasSuffix matches a topic on its dotted suffix, so that prod, stg and dev
// prefixes (and the io.pagure ones) all match.
func hasSuffix(topic, suffix string) bool {
	if !strings.HasSuffix(topic, suffix) {
		return false
	}
	n := len(topic) - len(suffix)
	return n == 0 || topic[n-1] == '.'
}

// isDistGitReceive matches the fedmsg-era dist-git topic, which may carry
// the repo and branch after it (git.receive.valgrind.master).
func isDistGitReceive(topic string) bool {
	if hasSuffix(topic, "git.receive") {
		return true
	}
	i := strings.Index(topic, ".git.receive.")
	return i >= 0 && !strings.Contains(topic[:i+1], ".pagure.")
}

// body gives typed access to message fields with messages that say which
// field is missing or has the wrong type.
type body map[string]any

func (b body) str(key string) (string, error) {
	v, ok := b[key]
	if !ok || v == nil {
		return "", fmt.Errorf("missing field %q", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q: want a string, got %s", key, short(v))
	}
	if s == "" {
		return "", fmt.Errorf("field %q is empty", key)
	}
	return s, nil
}

// optStr is a string field that may be absent or null.
func (b body) optStr(key string) (string, error) {
	v, ok := b[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q: want a string, got %s", key, short(v))
	}
	return s, nil
}

func (b body) integer(key string) (int64, bool, error) {
	v, ok := b[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	switch x := v.(type) {
	case float64:
		if x != float64(int64(x)) {
			return 0, false, fmt.Errorf("field %q: want a whole number, got %v", key, x)
		}
		return int64(x), true, nil
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("field %q: want a whole number, got %s", key, x)
		}
		return n, true, nil
	case int:
		return int64(x), true, nil
	case int64:
		return x, true, nil
	}
	return 0, false, fmt.Errorf("field %q: want a number, got %s", key, short(v))
}

func (b body) obj(key string) (body, error) {
	v, ok := b[key]
	if !ok || v == nil {
		return nil, fmt.Errorf("missing field %q", key)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("field %q: want an object, got %s", key, short(v))
	}
	return body(m), nil
}

// primaryOnly: messages from secondary Koji instances (s390, arm, ppc) are
// not ours (taskotron-trigger 0.3.8). Old messages carry no instance.
func primaryOnly(b body) error {
	inst, err := b.optStr("instance")
	if err != nil {
		return err
	}
	if inst != "" && inst != "primary" {
		return ignored("koji instance %q is not the primary one", inst)
	}
	return nil
}

func nvrFields(b body) (name, version, release string, err error) {
	if name, err = b.str("name"); err != nil {
		return
	}
	if version, err = b.str("version"); err != nil {
		return
	}
	release, err = b.str("release")
	return
}

func kojiBuild(b body) (contract.MessageData, error) {
	state, ok, err := b.integer("new")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New(`missing field "new"`)
	}
	if state != kojiComplete {
		return nil, ignored("build state %d is not COMPLETE", state)
	}
	if err := primaryOnly(b); err != nil {
		return nil, err
	}
	name, version, release, err := nvrFields(b)
	if err != nil {
		return nil, err
	}
	nvr := name + "-" + version + "-" + release
	data := contract.MessageData{
		"message_type":   KojiBuildPackageCompleted,
		"item":           nvr,
		"item_type":      "koji_build",
		"name":           name,
		"version":        version,
		"release":        release,
		"nvr":            nvr,
		"distgit_branch": distgitBranch(release),
	}
	if owner, _ := b.optStr("owner"); owner != "" {
		data["owner"] = owner
	}
	if id, ok, _ := b.integer("build_id"); ok {
		data["build_id"] = id
	}
	if isContainer(b, name) {
		data["message_type"] = KojiBuildDockerCompleted
		data["item_type"] = "docker_image"
	}
	return data, nil
}

// isContainer recognises container image builds: Fedora names their
// components <name>-container (older ones -docker), and OSBS builds ask for
// a container build in the request.
func isContainer(b body, name string) bool {
	if strings.HasSuffix(name, "-container") || strings.HasSuffix(name, "-docker") {
		return true
	}
	if req, ok := b["request"].([]any); ok && len(req) > 0 {
		if s, ok := req[0].(string); ok && strings.Contains(s, "/container/") {
			return true
		}
	}
	return false
}

var (
	fcRE  = regexp.MustCompile(`\.fc(\d+)`)
	elRE  = regexp.MustCompile(`\.el(\d+)`)
	elnRE = regexp.MustCompile(`\.eln\d*`)
)

// distgitBranch guesses the dist-git branch from the release's disttag:
// 1.fc20 → f20, 1.el7 → epel7, 1.el6 → el6, 1.eln142 → rawhide.
func distgitBranch(release string) string {
	r := "." + release
	if m := fcRE.FindAllStringSubmatch(r, -1); m != nil {
		return "f" + m[len(m)-1][1]
	}
	if elnRE.MatchString(r) {
		return "rawhide"
	}
	if m := elRE.FindAllStringSubmatch(r, -1); m != nil {
		n, _ := strconv.Atoi(m[len(m)-1][1])
		if n >= 7 {
			return "epel" + m[len(m)-1][1]
		}
		return "el" + m[len(m)-1][1]
	}
	return ""
}

func kojiTag(b body) (contract.MessageData, error) {
	tag, err := b.str("tag")
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(tag, "-pending") {
		return nil, ignored("tag %s is not a -pending tag", tag)
	}
	if err := primaryOnly(b); err != nil {
		return nil, err
	}
	name, version, release, err := nvrFields(b)
	if err != nil {
		return nil, err
	}
	data := contract.MessageData{
		"message_type": KojiTagChanged,
		"item":         tag,
		"item_type":    "koji_tag",
		"tag":          tag,
		"name":         name,
		"version":      version,
		"release":      release,
		"nvr":          name + "-" + version + "-" + release,
	}
	if user, _ := b.optStr("user"); user != "" {
		data["user"] = user
	}
	return data, nil
}

func bodhiUpdate(b body, msgType string) (contract.MessageData, error) {
	var upd body
	if _, ok := b["update"]; ok {
		u, err := b.obj("update")
		if err != nil {
			return nil, err
		}
		upd = u
	}
	var art body
	if _, ok := b["artifact"]; ok {
		a, err := b.obj("artifact")
		if err != nil {
			return nil, err
		}
		art = a
	}
	if upd == nil && art == nil {
		return nil, errors.New(`missing field "update"`)
	}
	// Bodhi 1 and early Bodhi 2 updates are known by title; later by alias.
	var alias, title string
	var err error
	if upd != nil {
		if alias, err = upd.optStr("alias"); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		if title, err = upd.optStr("title"); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
	}
	if alias == "" && art != nil {
		if alias, err = art.optStr("id"); err != nil {
			return nil, fmt.Errorf("artifact: %w", err)
		}
	}
	item := alias
	if item == "" {
		item = title
	}
	if item == "" {
		return nil, errors.New("update has neither alias nor title")
	}
	builds, err := buildNVRs(upd, "builds")
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if len(builds) == 0 {
		if builds, err = buildNVRs(art, "builds"); err != nil {
			return nil, fmt.Errorf("artifact: %w", err)
		}
	}
	data := contract.MessageData{
		"message_type": msgType,
		"item":         item,
		"item_type":    "bodhi_update",
		"update":       item,
		"builds":       toAnyList(builds),
	}
	if title != "" {
		data["title"] = title
	}
	if upd != nil {
		if c, ok := upd["critpath"].(bool); ok {
			data["critpath"] = c
		}
		for _, k := range []string{"request", "status", "type"} {
			if s, _ := upd.optStr(k); s != "" {
				data[k] = s
			}
		}
		if rel, ok := upd["release"].(map[string]any); ok {
			if br, _ := body(rel).optStr("branch"); br != "" {
				data["release"] = br
				data["distgit_branch"] = br
			}
		}
	}
	if _, ok := data["release"]; !ok && art != nil {
		if rel, _ := art.optStr("release"); rel != "" {
			data["release"] = rel
		}
	}
	for _, k := range []string{"new_builds", "removed_builds"} {
		if _, ok := b[k]; ok {
			l, err := stringList(b[k], k)
			if err != nil {
				return nil, err
			}
			data[k] = toAnyList(l)
		}
	}
	if rt, ok := b["re-trigger"].(bool); ok {
		data["retrigger"] = rt
	}
	return data, nil
}

// buildNVRs reads [{nvr: …}, …] (Bodhi) or a list of NVR strings.
func buildNVRs(b body, key string) ([]string, error) {
	if b == nil {
		return nil, nil
	}
	v, ok := b[key]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("field %q: want a list, got %s", key, short(v))
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		switch x := item.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			nvr, err := body(x).str("nvr")
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", key, err)
			}
			out = append(out, nvr)
		default:
			return nil, fmt.Errorf("field %q: want builds, got %s", key, short(item))
		}
	}
	return out, nil
}

func stringList(v any, key string) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("field %q: want a list of strings, got %s", key, short(v))
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("field %q: want a list of strings, got %s", key, short(item))
		}
		out = append(out, s)
	}
	return out, nil
}

func toAnyList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// distGitPush reads the fedmsg-era dist-git message (body.commit).
func distGitPush(b body) (contract.MessageData, error) {
	c, err := b.obj("commit")
	if err != nil {
		return nil, err
	}
	repo, err := c.str("repo")
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	branch, err := c.str("branch")
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	rev, err := c.str("rev")
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	ns, err := c.optStr("namespace")
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if ns == "" {
		ns = "rpms" // dist-git had only rpms before namespaces
	}
	data := distGitData(DistGitCommit, ns, repo, branch, rev)
	if u, _ := c.optStr("username"); u != "" {
		data["username"] = u
	}
	return data, nil
}

// pagurePush reads Pagure's git.receive: the dist-git one (src.fedoraproject.org,
// topic org.fedoraproject.*) is a DistGitCommit, others are Pagure pushes.
func pagurePush(b body, topic string) (contract.MessageData, error) {
	r, err := b.obj("repo")
	if err != nil {
		return nil, err
	}
	name, err := r.str("name")
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	ns, err := r.optStr("namespace")
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	branch, err := b.str("branch")
	if err != nil {
		return nil, err
	}
	rev, err := b.str("end_commit")
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(topic, "io.pagure.") {
		full := name
		if ns != "" {
			full = ns + "/" + name
		}
		data := distGitData(PagureGitReceive, ns, name, branch, rev)
		data["item"] = full + "#" + rev
		data["item_type"] = "git_commit"
		return data, nil
	}
	if ns == "" {
		ns = "rpms"
	}
	data := distGitData(DistGitCommit, ns, name, branch, rev)
	if a, _ := b.optStr("agent"); a != "" {
		data["username"] = a
	}
	return data, nil
}

func distGitData(msgType, ns, repo, branch, rev string) contract.MessageData {
	return contract.MessageData{
		"message_type":   msgType,
		"item":           ns + "/" + repo + "#" + rev,
		"item_type":      "dist_git_commit",
		"namespace":      ns,
		"repo":           repo,
		"repo_name":      repo,
		"name":           repo,
		"branch":         branch,
		"distgit_branch": branch,
		"rev":            rev,
	}
}

func compose(b body) (contract.MessageData, error) {
	status, err := b.str("status")
	if err != nil {
		return nil, err
	}
	id, err := b.str("compose_id")
	if err != nil {
		return nil, err
	}
	if status != "FINISHED" && status != "FINISHED_INCOMPLETE" {
		return nil, ignored("compose %s status %s is not finished", id, status)
	}
	loc, err := b.optStr("location")
	if err != nil {
		return nil, err
	}
	msgType := ComposeCompleted
	switch {
	case strings.Contains(id, "-Atomic-"):
		msgType = AtomicCompose
	case strings.Contains(id, "-Cloud-"):
		msgType = CloudCompose
	}
	return contract.MessageData{
		"message_type": msgType,
		"item":         id,
		"item_type":    "compose",
		"compose_id":   id,
		"location":     loc,
		"status":       status,
	}, nil
}
