package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/trigger"
)

// outgoing is one message of the stream as it goes on the wire: a real
// message made unique, or a malformed one.
type outgoing struct {
	ID       string
	Topic    string
	Headers  map[string]any
	Body     []byte
	Template string // the file it was made from
	// Malformed says how it is broken ("" for a real-shaped message); the
	// trigger must dead-letter it with a reason.
	Malformed string
	Jobs      []jobKey  // what the rules make of it
	SentAt    time.Time // when the broker confirmed it
}

// jobKey is what identifies a job's results in ResultsDB: the task, the
// item and its type, the arch.
type jobKey struct {
	Task, Item, Type, Arch string
}

func (k jobKey) String() string {
	return fmt.Sprintf("%s on %s %s (%s)", k.Task, k.Type, shortItem(k.Item), k.Arch)
}

func shortItem(s string) string { return bus.Truncate(s, 80) }

// template is a real bus message read from the fixtures.
type template struct {
	name string
	msg  contract.Message
	jobs bool // the rules make jobs of it
}

// loadTemplates reads every message of the folders (testdata/messages and
// fixtures/messages) and tells those the rules make jobs of.
func loadTemplates(dirs []string, tr *trigger.Trigger) ([]template, error) {
	var out []template
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			msg, err := bus.DecodeMessage(raw)
			if err != nil {
				return nil, fmt.Errorf("message %s: %w", f, err)
			}
			ex, err := tr.Explain(msg)
			if err != nil {
				return nil, fmt.Errorf("message %s: %w", f, err)
			}
			if ex.Error != "" {
				// A real message the trigger cannot read would be dead-lettered;
				// the stream's malformed messages are made on purpose instead.
				continue
			}
			out = append(out, template{name: filepath.Join(filepath.Base(dir), filepath.Base(f)), msg: msg, jobs: len(ex.Jobs) > 0})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no messages in %s", strings.Join(dirs, ", "))
	}
	return out, nil
}

// expecter computes the jobs a message makes with the rules and the
// configuration the trigger process runs with (no dedup: the stream's
// items are unique, see makeUnique).
type expecter struct{ tr *trigger.Trigger }

func newExpecter(ctx context.Context, env []string) (*expecter, error) {
	cfg, err := config.Load("", env)
	if err != nil {
		return nil, err
	}
	setup, err := trigger.FromConfig(ctx, cfg, "", false, nil)
	if err != nil {
		return nil, err
	}
	return &expecter{tr: trigger.New(setup.Options)}, nil
}

func (e *expecter) jobs(msg contract.Message) ([]jobKey, string, error) {
	ex, err := e.tr.Explain(msg)
	if err != nil {
		return nil, "", err
	}
	var keys []jobKey
	for _, j := range ex.Jobs {
		keys = append(keys, jobKey{Task: j.TaskName, Item: j.Item, Type: j.ItemType, Arch: j.Arch})
	}
	return keys, ex.Error, nil
}

// makeUnique gives a copy of a real message a new id and an item of its
// own, so that the trigger's dedup (same item, task and arch within hours)
// does not fold the stream's messages into each other: a Koji build gets a
// release of its own, a Bodhi update an alias (or title) of its own. A tag
// event keeps its tag (the rules match the tag's name); tag jobs are not
// deduplicated by key (fuse_delay 0 makes a job per event).
func makeUnique(m contract.Message, n int) (contract.Message, error) {
	raw, err := json.Marshal(m.Body)
	if err != nil {
		return m, err
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		return m, err
	}
	out := contract.Message{ID: uuid.NewString(), Topic: m.Topic, Headers: map[string]any{}, Body: body}
	for k, v := range m.Headers {
		out.Headers[k] = v
	}
	out.Headers["chaos-seq"] = int64(n)
	mark := fmt.Sprintf("%06x", n)
	switch {
	case strings.HasSuffix(m.Topic, "buildsys.build.state.change"), strings.HasSuffix(m.Topic, "buildsys.tag"):
		if r, ok := body["release"].(string); ok {
			body["release"] = r + ".c" + mark
		}
	case strings.Contains(m.Topic, ".bodhi.update."):
		hasAlias := false
		if upd, ok := body["update"].(map[string]any); ok {
			if a, ok := upd["alias"].(string); ok && a != "" {
				upd["alias"], hasAlias = a+mark, true
			}
			if t, ok := upd["title"].(string); ok && t != "" && !hasAlias {
				upd["title"] = t + "-c" + mark
			}
		}
		if art, ok := body["artifact"].(map[string]any); ok {
			if id, ok := art["id"].(string); ok && id != "" {
				art["id"] = id + mark
			}
		}
	}
	return out, nil
}

// malformedKinds are the broken messages the stream injects; each must be
// dead-lettered with its reason.
var malformedKinds = []string{"not JSON", "a JSON array", "wrong shape", "5 MiB name"}

// makeMalformed makes the n-th broken message from a Koji build template.
func makeMalformed(kind string, build contract.Message, n int) (outgoing, error) {
	o := outgoing{ID: uuid.NewString(), Topic: build.Topic, Headers: map[string]any{"chaos-seq": int64(n)}, Malformed: kind, Template: "malformed: " + kind}
	body := map[string]any{}
	for k, v := range build.Body {
		body[k] = v
	}
	switch kind {
	case "not JSON":
		o.Body = []byte(`{"name": "half a message`)
		return o, nil
	case "a JSON array":
		o.Body = []byte(`[{"name": "xchat"}]`)
		return o, nil
	case "wrong shape":
		body["name"] = map[string]any{"not": "a string"}
		body["release"] = fmt.Sprintf("1.c%06x.fc40", n)
	case "5 MiB name":
		body["name"] = strings.Repeat("x", 5<<20)
	default:
		return o, fmt.Errorf("unknown malformed kind %q", kind)
	}
	raw, err := json.Marshal(body)
	o.Body = raw
	return o, err
}

// buildStream makes the stream: messages real-shaped ones (three in four
// from templates the rules make jobs of), malformed ones spread among them.
func buildStream(templates []template, e *expecter, messages, malformed int, rng *rand.Rand) ([]outgoing, error) {
	var jobbing, other []template
	var build *template
	for i := range templates {
		t := &templates[i]
		if t.jobs {
			jobbing = append(jobbing, *t)
			if build == nil && strings.HasSuffix(t.msg.Topic, "buildsys.build.state.change") {
				build = t
			}
		} else {
			other = append(other, *t)
		}
	}
	if len(jobbing) == 0 || build == nil {
		return nil, fmt.Errorf("no template message makes jobs (a completed Koji build is needed)")
	}
	total := messages + malformed
	// Where the malformed ones go: spread evenly, never first.
	bad := map[int]int{}
	for i := range malformed {
		bad[(i+1)*total/(malformed+1)] = i
	}
	var out []outgoing
	seen := map[jobKey]string{}
	for n := range total {
		if k, ok := bad[n]; ok {
			o, err := makeMalformed(malformedKinds[k%len(malformedKinds)], build.msg, n)
			if err != nil {
				return nil, err
			}
			if o.Topic != "" && json.Valid(o.Body) {
				var body map[string]any
				if json.Unmarshal(o.Body, &body) == nil {
					if _, why, err := e.jobs(contract.Message{ID: o.ID, Topic: o.Topic, Body: body}); err != nil || why == "" {
						return nil, fmt.Errorf("malformed message %q is not malformed to the trigger (%v)", o.Malformed, err)
					}
				}
			}
			out = append(out, o)
			continue
		}
		t := other
		if len(other) == 0 || rng.IntN(4) > 0 {
			t = jobbing
		}
		tpl := t[rng.IntN(len(t))]
		msg, err := makeUnique(tpl.msg, n)
		if err != nil {
			return nil, fmt.Errorf("message from %s: %w", tpl.name, err)
		}
		keys, why, err := e.jobs(msg)
		if err != nil {
			return nil, fmt.Errorf("message from %s: %w", tpl.name, err)
		}
		if why != "" {
			return nil, fmt.Errorf("message from %s, made unique, is malformed to the trigger: %s", tpl.name, why)
		}
		for _, k := range keys {
			if k.Type == "koji_tag" {
				continue
			}
			if prev, ok := seen[k]; ok {
				return nil, fmt.Errorf("messages from %s and %s make the same job %s: the trigger would deduplicate it", prev, tpl.name, k)
			}
			seen[k] = tpl.name
		}
		body, err := json.Marshal(msg.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, outgoing{ID: msg.ID, Topic: msg.Topic, Headers: msg.Headers, Body: body, Template: tpl.name, Jobs: keys})
	}
	return out, nil
}

// expectedJobs counts the jobs of the stream by key.
func expectedJobs(stream []outgoing) map[jobKey]int {
	out := map[jobKey]int{}
	for _, o := range stream {
		for _, k := range o.Jobs {
			out[k]++
		}
	}
	return out
}

// taskNames lists the tasks the stream's jobs run.
func taskNames(stream []outgoing) []string {
	set := map[string]bool{}
	for _, o := range stream {
		for _, k := range o.Jobs {
			set[k.Task] = true
		}
	}
	var out []string
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
