package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/taskotron-go/taskotron/bus"
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

// A field longer than its limit makes the message malformed: no real Koji,
// Bodhi or dist-git value comes near, and such a value would end up in job
// queue headers, dedup keys, paths and log lines. The limits are in bytes.
type limit struct {
	max int
	why string
}

var (
	// Koji keeps a build as <name>-<version>-<release>.<arch>.rpm, one file
	// name: 255 bytes on Linux file systems (Bodhi's builds.nvr holds 100).
	nvrLimit = limit{255, "an NVR is at most 255 bytes (Koji writes N-V-R.arch.rpm as one file name)"}
	// Koji's hub checks tag names against MaxNameLengthInternal, 256 by default.
	tagLimit = limit{256, "a Koji tag name is at most 256 bytes (the hub's MaxNameLengthInternal)"}
	// Bodhi's updates.alias column is Unicode(64).
	aliasLimit = limit{64, "a Bodhi update alias is at most 64 characters (Bodhi's updates.alias)"}
	// Bodhi 1 named an update by its builds' NVRs, joined: 256 of them.
	titleLimit = limit{64 << 10, "a Bodhi update title (its NVRs, joined) is at most 64 KiB"}
	// A branch is a file under refs/heads (Bodhi's releases.branch holds 10).
	branchLimit = limit{255, "a branch name is at most 255 bytes (git keeps it as a file name)"}
	// Repository names and namespaces (Pagure: 255), commit ids (64 hex
	// digits at most), compose ids, Koji instances and user names.
	nameLimit = limit{255, "at most 255 bytes"}
	// A compose's location is a URL.
	urlLimit = limit{4096, "a URL is at most 4096 bytes"}
)

func (l limit) check(field, s string) error {
	if len(s) <= l.max {
		return nil
	}
	return fmt.Errorf("field %q is %d bytes long; %s", field, len(s), l.why)
}

// strL is str within a limit.
func (b body) strL(key string, l limit) (string, error) {
	s, err := b.str(key)
	if err == nil {
		err = l.check(key, s)
	}
	return s, err
}

// optional reads a string field that is left out when it is of another
// type, as it was before limits: only a value too long is an error.
func (b body) optional(key string, l limit) (string, error) {
	s, err := b.optStr(key)
	if err != nil {
		return "", nil
	}
	return s, l.check(key, s)
}

// optStrL is optStr within a limit.
func (b body) optStrL(key string, l limit) (string, error) {
	s, err := b.optStr(key)
	if err == nil {
		err = l.check(key, s)
	}
	return s, err
}

// Normalise turns a bus message into the data rules see (design §2.2). It
// returns an error wrapping ErrIgnored for messages skipped on purpose and
// one wrapping ErrMalformed when a handled message lacks what it needs.
func Normalise(msg contract.Message) (contract.MessageData, error) {
	topic := msg.Topic
	if topic == "" {
		return nil, malformed("no topic")
	}
	// The topic is the routing key (255 bytes at most) on AMQP, but
	// anything in a file; errors show its start.
	shown := bus.Truncate(topic, bus.MaxHeaderValue)
	if msg.Body == nil {
		return nil, malformed("%s: no body", shown)
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
		return nil, ignored("topic %s is not handled", shown)
	}
	if err != nil {
		if errors.Is(err, ErrIgnored) || errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("%s: %w", shown, err)
		}
		return nil, fmt.Errorf("%s: %w: %v", shown, ErrMalformed, err)
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
	inst, err := b.optStrL("instance", nameLimit)
	if err != nil {
		return err
	}
	if inst != "" && inst != "primary" {
		return ignored("koji instance %q is not the primary one", inst)
	}
	return nil
}

func nvrFields(b body) (name, version, release string, err error) {
	if name, err = b.strL("name", nvrLimit); err != nil {
		return
	}
	if version, err = b.strL("version", nvrLimit); err != nil {
		return
	}
	if release, err = b.strL("release", nvrLimit); err != nil {
		return
	}
	if n := len(name) + len(version) + len(release) + 2; n > nvrLimit.max {
		err = fmt.Errorf("the NVR is %d bytes long; %s", n, nvrLimit.why)
	}
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
	owner, err := b.optional("owner", nameLimit)
	if err != nil {
		return nil, err
	}
	if owner != "" {
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
	tag, err := b.strL("tag", tagLimit)
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
	user, err := b.optional("user", nameLimit)
	if err != nil {
		return nil, err
	}
	if user != "" {
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
		if alias, err = upd.optStrL("alias", aliasLimit); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		if title, err = upd.optStrL("title", titleLimit); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
	}
	if alias == "" && art != nil {
		if alias, err = art.optStrL("id", aliasLimit); err != nil {
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
			s, err := upd.optional(k, nameLimit)
			if err != nil {
				return nil, fmt.Errorf("update: %w", err)
			}
			if s != "" {
				data[k] = s
			}
		}
		if rel, ok := upd["release"].(map[string]any); ok {
			br, err := body(rel).optional("branch", branchLimit)
			if err != nil {
				return nil, fmt.Errorf("update: release: %w", err)
			}
			if br != "" {
				data["release"] = br
				data["distgit_branch"] = br
			}
		}
	}
	if _, ok := data["release"]; !ok && art != nil {
		rel, err := art.optional("release", branchLimit)
		if err != nil {
			return nil, fmt.Errorf("artifact: %w", err)
		}
		if rel != "" {
			data["release"] = rel
		}
	}
	for _, k := range []string{"new_builds", "removed_builds"} {
		if _, ok := b[k]; ok {
			l, err := stringList(b[k], k)
			if err != nil {
				return nil, err
			}
			for _, nvr := range l {
				if err := nvrLimit.check(k, nvr); err != nil {
					return nil, err
				}
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
			if err := nvrLimit.check(key, x); err != nil {
				return nil, err
			}
			out = append(out, x)
		case map[string]any:
			nvr, err := body(x).strL("nvr", nvrLimit)
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
	repo, err := c.strL("repo", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	branch, err := c.strL("branch", branchLimit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	rev, err := c.strL("rev", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	ns, err := c.optStrL("namespace", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if ns == "" {
		ns = "rpms" // dist-git had only rpms before namespaces
	}
	data := distGitData(DistGitCommit, ns, repo, branch, rev)
	u, err := c.optional("username", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if u != "" {
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
	name, err := r.strL("name", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	ns, err := r.optStrL("namespace", nameLimit)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	branch, err := b.strL("branch", branchLimit)
	if err != nil {
		return nil, err
	}
	rev, err := b.strL("end_commit", nameLimit)
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
	a, err := b.optional("agent", nameLimit)
	if err != nil {
		return nil, err
	}
	if a != "" {
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
	status, err := b.strL("status", nameLimit)
	if err != nil {
		return nil, err
	}
	id, err := b.strL("compose_id", nameLimit)
	if err != nil {
		return nil, err
	}
	if status != "FINISHED" && status != "FINISHED_INCOMPLETE" {
		return nil, ignored("compose %s status %s is not finished", id, status)
	}
	loc, err := b.optStrL("location", urlLimit)
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
