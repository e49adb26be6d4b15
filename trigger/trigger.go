// Package trigger turns bus messages into jobs: a normaliser per message type
// makes the message data, taskotron-trigger compatible rules decide which
// tasks run on which arches, and a dedup store makes sure the same work is
// not queued twice. Relay drives it between a bus.Source and a bus.JobQueue;
// Service (service.go) is the trigger role built from the configuration.
// The trigger itself works on plain data (messages in, jobs out); only
// relay.go and service.go touch transports (bus) and status.
package trigger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// Options configure a Trigger. Zero values are usable: built-in rules,
// x86_64, no critpath list, no dedup.
type Options struct {
	Rules    *Rules
	Arches   []string
	Critpath []string
	// Dedup remembers messages and job keys; nil means no dedup.
	Dedup DedupStore
	// DedupWindow: the same {item, item_type, taskname, arch} within it
	// makes no second job. Zero means 6 hours. Tag jobs use FuseDelay
	// instead: a tag's content changes with each event.
	DedupWindow time.Duration
	// FuseDelay holds koji_tag jobs this long so that a burst of tag events
	// for one tag makes one job per task and arch (used by Relay).
	FuseDelay time.Duration
	// GitCacheDir is where discover clones repos; empty means a temp dir.
	GitCacheDir string
	// RepoRewrite maps URL prefixes for discover to others (like git's
	// insteadOf), e.g. https://src.fedoraproject.org/ to a local mirror.
	RepoRewrite map[string]string
	Log         *slog.Logger
	Now         func() time.Time
}

// Trigger applies rules to messages. It is safe for concurrent use; the
// rules can be swapped at run time (SIGHUP) with SetRules.
type Trigger struct {
	opts  Options
	rules atomic.Pointer[Rules]
	log   *slog.Logger
}

// New makes a Trigger.
func New(opts Options) *Trigger {
	if opts.Rules == nil {
		opts.Rules = DefaultRules()
	}
	if len(opts.Arches) == 0 {
		opts.Arches = []string{"x86_64"}
	}
	if opts.DedupWindow == 0 {
		opts.DedupWindow = 6 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	t := &Trigger{opts: opts, log: opts.Log}
	t.rules.Store(opts.Rules)
	return t
}

// SetRules replaces the rules for the messages handled from now on.
func (t *Trigger) SetRules(r *Rules) { t.rules.Store(r) }

// Reload reads a rules file and uses it from now on. A file with an error
// changes nothing: the rules in use stay, and the error names the line.
func (t *Trigger) Reload(path string, vars map[string]any) error {
	r, err := LoadRules(path, vars)
	if err != nil {
		return err
	}
	t.SetRules(r)
	return nil
}

// Rules returns the rules in use.
func (t *Trigger) Rules() *Rules { return t.rules.Load() }

// Handle turns one message into the jobs it should schedule: normalise, match
// the rules, give each job a fresh uuid, and drop what dedup has seen. An
// error wrapping ErrIgnored or ErrMalformed says the message makes no jobs;
// other errors are transient (a dedup store or a discover clone failed).
//
// With a dedup store, the jobs are recorded as pending for the message: call
// Commit once they are durably queued. A message handled again before
// Commit gets the same jobs (same uuids) back, so a crash between queueing
// and acking does not lose them.
func (t *Trigger) Handle(ctx context.Context, msg contract.Message) ([]contract.Job, error) {
	out, err := t.handle(ctx, msg)
	return out.jobs, err
}

type handled struct {
	data       contract.MessageData
	jobs       []contract.Job
	duplicates int
	seen       string
}

func (t *Trigger) handle(ctx context.Context, msg contract.Message) (handled, error) {
	var h handled
	data, err := Normalise(msg)
	if err != nil {
		return h, err
	}
	rules := t.rules.Load()
	t.addConfig(data, rules)
	h.data = data
	jobs, _, err := t.plan(ctx, msg, data, rules, false)
	if err != nil {
		return h, err
	}
	if t.opts.Dedup == nil {
		h.jobs = jobs
		return h, nil
	}
	res, err := t.opts.Dedup.Claim(ctx, msg.ID, jobs, t.opts.Now(), t.keyWindow(jobs))
	if err != nil {
		return h, fmt.Errorf("dedup store: %w", err)
	}
	h.jobs, h.duplicates, h.seen = res.Jobs, len(res.Duplicates), res.Seen
	return h, nil
}

// keyWindow is how long a job key counts as the same work. A tag's content
// changes with every tag event, so for tag jobs the window is the fuse delay
// (reference §3.4): a burst makes one job, and a tag event after it makes
// the next one. Other items (an NVR, a commit, a compose) do not change, so
// the dedup window applies.
func (t *Trigger) keyWindow(jobs []contract.Job) time.Duration {
	if fusable(jobs) {
		return t.opts.FuseDelay
	}
	return t.opts.DedupWindow
}

// Commit marks a message's jobs as durably queued.
func (t *Trigger) Commit(ctx context.Context, msgID string) error {
	if t.opts.Dedup == nil || msgID == "" {
		return nil
	}
	return t.opts.Dedup.Done(ctx, msgID)
}

func (t *Trigger) addConfig(data contract.MessageData, rules *Rules) {
	list := t.opts.Critpath
	if rules.critpath != nil {
		list = rules.critpath
	}
	crit := make([]any, len(list))
	for i, c := range list {
		crit[i] = c
	}
	data["critpath_pkgs"] = crit
}

// RuleExplanation says whether one rule matched a message, and why.
type RuleExplanation struct {
	Index   int             `json:"index"`
	Line    int             `json:"line"`
	Matched bool            `json:"matched"`
	Why     []string        `json:"why"`
	Checks  []Check         `json:"checks,omitempty"`
	Error   string          `json:"error,omitempty"`
	Jobs    []contract.Job  `json:"jobs"`
	Do      []ActionSummary `json:"do,omitempty"`
}

// ActionSummary is a rule's action after templating.
type ActionSummary struct {
	Tasks         []string       `json:"tasks,omitempty"`
	Arches        []string       `json:"arches,omitempty"`
	Discover      map[string]any `json:"discover,omitempty"`
	MatchHostArch bool           `json:"match_host_arch,omitempty"`
	Where         map[string]any `json:"where,omitempty"`
}

// Explanation is what `taskotron explain` prints.
type Explanation struct {
	Message contract.Message     `json:"message"`
	Data    contract.MessageData `json:"data,omitempty"`
	Ignored string               `json:"ignored,omitempty"`
	Error   string               `json:"error,omitempty"`
	Rules   []RuleExplanation    `json:"rules"`
	Jobs    []contract.Job       `json:"jobs"`
}

// Explain evaluates every rule against a message without touching the dedup
// store. Ignored and malformed messages are explained, not returned as
// errors; the error is for failures such as a discover clone.
func (t *Trigger) Explain(msg contract.Message) (Explanation, error) {
	ctx := context.Background()
	ex := Explanation{Message: msg, Rules: []RuleExplanation{}, Jobs: []contract.Job{}}
	data, err := Normalise(msg)
	switch {
	case errors.Is(err, ErrIgnored):
		ex.Ignored = err.Error()
		return ex, nil
	case err != nil:
		ex.Error = err.Error()
		return ex, nil
	}
	rules := t.rules.Load()
	t.addConfig(data, rules)
	ex.Data = data
	jobs, exps, err := t.plan(ctx, msg, data, rules, true)
	ex.Rules = exps
	if jobs != nil {
		ex.Jobs = jobs
	}
	return ex, err
}

// plan matches every rule and builds the jobs, one per distinct
// {item, item_type, taskname, arch}.
func (t *Trigger) plan(ctx context.Context, msg contract.Message, data contract.MessageData, rules *Rules, explain bool) ([]contract.Job, []RuleExplanation, error) {
	res := resolver{data: data, vars: rules.vars}
	var jobs []contract.Job
	var exps []RuleExplanation
	seen := map[string]bool{}
	item, _ := data["item"].(string)
	itemType, _ := data["item_type"].(string)
	rev := revision(msg, data)
	now := t.opts.Now().UTC()
	for i, r := range rules.rules {
		ok, checks, err := r.query.eval(data, res)
		ex := RuleExplanation{Index: i, Line: r.line, Matched: ok && err == nil, Jobs: []contract.Job{}}
		if explain {
			ex.Checks = checks
			for _, c := range checks {
				ex.Why = append(ex.Why, c.String())
			}
		}
		if err != nil {
			// A rule that cannot be evaluated for this message (say, an
			// unknown ${var}) does not match; the others still run.
			ex.Error = ruleError(rules.Name, i+1, r.line, err)
			t.log.Warn("rule not evaluated", "rule", i+1, "line", r.line, "msg_id", msg.ID, "err", ex.Error)
		}
		if ex.Matched {
			for _, a := range r.do {
				planned, sum, err := t.act(ctx, a, res, rules.Name)
				if err != nil {
					return nil, exps, err
				}
				ex.Do = append(ex.Do, sum)
				for _, p := range planned {
					job := contract.Job{
						Item: item, ItemType: itemType, TaskName: p.task, Arch: p.arch,
						MsgID: msg.ID, Created: now, Priority: a.priority,
						GitRepo: p.repo, GitBranch: p.branch,
					}
					job.MatchHostArch = a.matchHostArch
					job.Labels = p.labels
					job.Revision = rev
					job.Rule = fmt.Sprintf("%s:%d", rules.Name, r.line)
					k := Key(job)
					if seen[k] {
						continue
					}
					seen[k] = true
					job.UUID = newUUID()
					ex.Jobs = append(ex.Jobs, job)
					jobs = append(jobs, job)
				}
			}
		}
		if explain {
			exps = append(exps, ex)
		}
	}
	return jobs, exps, nil
}

type plannedTask struct {
	task, arch, repo, branch string
	labels                   map[string]string
}

// labels resolves an action's where: for one arch. Without arches: the
// jobs run on whatever arch the lab is, or the one where: names; with
// arches: each job asks for a lab of its arch (noarch asks for none).
func (r resolver) labels(where map[string]any, arch string, explicitArches bool) (map[string]string, error) {
	if where == nil {
		return nil, nil
	}
	out := make(map[string]string, len(where)+1)
	for k, v := range where {
		val, err := r.value(v)
		if err != nil {
			return nil, err
		}
		s := text(val)
		if s == "" {
			return nil, fmt.Errorf("where: label %q is empty for this message", k)
		}
		out[k] = s
	}
	if explicitArches && arch != "noarch" {
		out["arch"] = arch
	}
	return out, nil
}

func (t *Trigger) act(ctx context.Context, a action, res resolver, rulesName string) ([]plannedTask, ActionSummary, error) {
	var sum ActionSummary
	arches := t.opts.Arches
	if a.where != nil && a.arches == nil {
		// One job per task: the lab's labels say where it runs.
		arch, _ := a.where["arch"].(string)
		if arch != "" {
			v, err := res.value(arch)
			if err != nil {
				return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
			}
			arch = text(v)
		}
		arches = []string{arch}
	}
	if a.arches != nil {
		names, err := res.names(a.arches, "arches")
		if err != nil {
			return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
		}
		arches = names
	}
	sum.Arches, sum.MatchHostArch = arches, a.matchHostArch
	if a.where != nil {
		w, err := res.value(a.where)
		if err != nil {
			return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
		}
		sum.Where = w.(map[string]any)
	}
	var out []plannedTask
	if a.tasks != nil {
		names, err := res.names(a.tasks, "tasks")
		if err != nil {
			return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
		}
		sum.Tasks = names
		for _, n := range names {
			for _, arch := range arches {
				labels, err := res.labels(a.where, arch, a.arches != nil)
				if err != nil {
					return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
				}
				out = append(out, plannedTask{task: n, arch: arch, labels: labels})
			}
		}
	}
	if a.discover != nil {
		v, err := res.value(a.discover)
		if err != nil {
			return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
		}
		d := v.(map[string]any)
		sum.Discover = d
		found, err := discover(ctx, d, t.opts.GitCacheDir, t.opts.RepoRewrite, t.log)
		if err != nil {
			return nil, sum, err
		}
		for _, f := range found {
			sum.Tasks = append(sum.Tasks, f.name)
			for _, arch := range arches {
				labels, err := res.labels(a.where, arch, a.arches != nil)
				if err != nil {
					return nil, sum, fmt.Errorf("%w: %s:%d: %v", ErrMalformed, rulesName, a.line, err)
				}
				out = append(out, plannedTask{task: f.name, arch: arch, repo: f.repo, branch: f.branch, labels: labels})
			}
		}
	}
	return out, sum, nil
}

// Key is the dedup identity of a job: {item, item_type, taskname, arch},
// and the item's revision when it has one (see revision).
func Key(j contract.Job) string {
	k := j.ItemType + "\x00" + j.Item + "\x00" + j.TaskName + "\x00" + j.Arch
	if j.Revision != "" {
		k += "\x00" + j.Revision
	}
	if len(j.Labels) > 0 {
		// The same task for two kinds of board is two jobs.
		names := make([]string, 0, len(j.Labels))
		for n := range j.Labels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			k += "\x00" + n + "=" + j.Labels[n]
		}
	}
	return k
}

// revision tells apart the states of an item that changes under one name:
// a Bodhi update gets new builds when it is edited, and each set of builds
// is new work. Bodhi's re-trigger request asks for a new run of the same
// builds. Other items (an NVR, a commit, a compose) never change; a tag
// changes with every event and is fused instead (keyWindow).
func revision(msg contract.Message, data contract.MessageData) string {
	if data["item_type"] != "bodhi_update" {
		return ""
	}
	var builds []string
	list, _ := data["builds"].([]any)
	for _, b := range list {
		if s, ok := b.(string); ok {
			builds = append(builds, s)
		}
	}
	sort.Strings(builds)
	text := strings.Join(builds, " ")
	if rt, _ := data["retrigger"].(bool); rt {
		text += "\x00re-trigger " + msg.ID
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:6])
}

// newUUID makes a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
