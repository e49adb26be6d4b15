package results

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/taskotron-go/taskotron/contract"
)

// Links are where the posts of an execution point.
type Links struct {
	// ArtifactsURL is the public URL of the artifacts folder; each result
	// links to <ArtifactsURL>/<uuid>/<artifact>.
	ArtifactsURL string
	// ExecDBURL makes each group's ref_url <ExecDBURL>/jobs/<uuid>; without
	// it the group links to the execution's artifacts.
	ExecDBURL string
	// TestcaseURL makes each testcase's ref_url <TestcaseURL>/<name>.
	TestcaseURL string
}

// Posts turns an execution's results into ResultsDB posts. An execution
// that did not run to the end (NOT_OK) and produced no results gets one
// terminal CRASHED or ABORTED result for its item, so that every job ends
// with a verdict.
func Posts(exec contract.Execution, l Links) ([]contract.ResultsDBPost, error) {
	if strings.TrimSpace(exec.UUID) == "" {
		return nil, fmt.Errorf("execution has no uuid: cannot group its results")
	}
	posts := []contract.ResultsDBPost{}
	poster := NewPoster(exec, l)
	err := EachToReport(exec, func(res contract.Result) error {
		p, err := poster.Post(res)
		posts = append(posts, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return posts, nil
}

// Poster turns an execution's results into posts one at a time, for
// results that stream in (task output read as it comes).
type Poster struct {
	exec  contract.Execution
	links Links
	group *contract.GroupRef
	n     int
}

// NewPoster makes a Poster for exec (whose Results it does not read).
func NewPoster(exec contract.Execution, l Links) *Poster {
	return &Poster{exec: exec, links: l}
}

// Post is the post of the next result. The group is described after the
// first result: one description for the whole group, as ResultsDB keeps
// the last one.
func (p *Poster) Post(res contract.Result) (contract.ResultsDBPost, error) {
	p.n++
	if p.group == nil {
		g := p.links.group(p.exec, res)
		p.group = &g
	}
	post, err := p.links.post(p.exec, res, *p.group)
	if err != nil {
		return post, fmt.Errorf("execution %s, result %d: %w", p.exec.UUID, p.n, err)
	}
	return post, nil
}

// Terminal is the result of an execution that ended NOT_OK without any
// (see ResultsToReport); ok is false for any other execution.
func Terminal(exec contract.Execution) (contract.Result, bool, error) {
	if exec.ExecutionStatus != contract.ExecutionNotOK {
		return contract.Result{}, false, nil
	}
	res, err := terminalResult(exec)
	return res, err == nil, err
}

// ResultsToReport is the execution's results with their details, plus
// the terminal result of an execution that ended NOT_OK without any (see
// EachToReport), in memory.
func ResultsToReport(exec contract.Execution) ([]contract.Result, error) {
	rs := []contract.Result{}
	err := eachToReport(exec, true, func(r contract.Result) error { rs = append(rs, r); return nil })
	return rs, err
}

// EachToReport calls fn with each result to report, without its details
// (see EachWithoutDetails; no post carries them): the execution's, or the
// terminal result of an execution that ended NOT_OK without any.
func EachToReport(exec contract.Execution, fn func(contract.Result) error) error {
	return eachToReport(exec, false, fn)
}

func eachToReport(exec contract.Execution, withDetails bool, fn func(contract.Result) error) error {
	if exec.NumResults() > 0 || exec.ExecutionStatus != contract.ExecutionNotOK {
		return each(exec, withDetails, fn)
	}
	res, err := terminalResult(exec)
	if err != nil {
		return err
	}
	return fn(res)
}

// terminalResult is the verdict on an execution that ended NOT_OK without
// results.
func terminalResult(exec contract.Execution) (contract.Result, error) {
	if exec.Item == "" || exec.ItemType == "" || exec.TaskName == "" {
		return contract.Result{}, fmt.Errorf("execution %s ended NOT_OK without results and without item, item_type or taskname: cannot report a terminal result", exec.UUID)
	}
	note := strings.TrimSpace(exec.Status)
	if note == "" {
		note = fmt.Sprintf("execution failed (exit code %d) without results", exec.ExitCode)
	}
	res := contract.Result{
		Item:      exec.Item,
		Type:      exec.ItemType,
		CheckName: Namespaced(exec.Namespace, exec.TaskName),
		Outcome:   TerminalOutcome(exec),
		Note:      note,
	}
	if exec.Arch != "" {
		res.Arch = contract.OneArch(exec.Arch)
	}
	return res, nil
}

// TerminalOutcome is the verdict on a run that did not finish, as the
// runner gave it (exec.Outcome): ABORTED when it was stopped, CRASHED when
// it fell over; an execution that says nothing (made by another runner)
// CRASHED. Both mean the infrastructure failed, not the package.
func TerminalOutcome(exec contract.Execution) contract.Outcome {
	if o, err := contract.ParseOutcome(string(exec.Outcome)); err == nil && o.Broken() {
		return o
	}
	return contract.Crashed
}

func (l Links) post(exec contract.Execution, res contract.Result, group contract.GroupRef) (contract.ResultsDBPost, error) {
	name := res.CheckName
	if name == "" {
		name = exec.TaskName
	}
	if name == "" {
		return contract.ResultsDBPost{}, fmt.Errorf("no checkname and no taskname: the ResultsDB testcase needs a name")
	}
	if res.Item == "" {
		return contract.ResultsDBPost{}, fmt.Errorf("%s: no item", name)
	}
	outcome, err := contract.ParseOutcome(string(res.Outcome))
	if err != nil {
		return contract.ResultsDBPost{}, fmt.Errorf("%s: %w", name, err)
	}
	p := contract.ResultsDBPost{
		Outcome:  outcome,
		Testcase: contract.TestcaseRef{Name: name},
		Groups:   []contract.GroupRef{group},
		Note:     res.Note,
		RefURL:   l.artifactURL(exec, res.Artifact),
		Data:     map[string]any{"item": res.Item},
	}
	if l.TestcaseURL != "" {
		p.Testcase.RefURL = joinURL(l.TestcaseURL, name)
	}
	if res.Type != "" {
		p.Data["type"] = res.Type
	}
	switch {
	case len(res.Arch.Names) == 1 && !res.Arch.List:
		p.Data["arch"] = res.Arch.Names[0]
	case len(res.Arch.Names) > 0:
		p.Data["arch"] = append([]string(nil), res.Arch.Names...)
	}
	keys := make([]string, 0, len(res.Extra))
	for k := range res.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(k, ":") {
			return p, fmt.Errorf("%s: data key %q: ResultsDB does not allow ':' in key names", name, k)
		}
		if _, named := p.Data[k]; named || k == "_internal" {
			continue
		}
		if v, ok := dataValue(res.Extra[k]); ok {
			p.Data[k] = v
		}
	}
	return p, nil
}

// dataValue renders a keyval as ResultsDB stores it: strings, and lists of
// strings for lists (stored as one row per value). Structures become JSON.
func dataValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := dataValue(e); ok {
				if str, isStr := s.(string); isStr {
					out = append(out, str)
				} else {
					raw, _ := json.Marshal(s)
					out = append(out, string(raw))
				}
			}
		}
		return out, true
	case []string:
		return append([]string(nil), x...), true
	case map[string]any, map[any]any:
		raw, err := json.Marshal(normalize(x))
		if err != nil {
			return fmt.Sprint(x), true
		}
		return string(raw), true
	}
	return fmt.Sprint(v), true
}

func (l Links) group(exec contract.Execution, res contract.Result) contract.GroupRef {
	g := contract.GroupRef{UUID: exec.UUID}
	switch {
	case l.ExecDBURL != "":
		g.RefURL = joinURL(l.ExecDBURL, "jobs", exec.UUID)
	case l.ArtifactsURL != "":
		g.RefURL = joinURL(l.ArtifactsURL, exec.UUID) + "/"
	}
	task, item, arch := exec.TaskName, exec.Item, exec.Arch
	if item == "" {
		item = res.Item
	}
	if task == "" {
		task = res.CheckName
	}
	if arch == "" {
		arch = res.Arch.String()
	}
	g.Description = strings.TrimSpace(fmt.Sprintf("%s on %s", task, item))
	if arch != "" {
		g.Description += " (" + arch + ")"
	}
	return g
}

// artifactURL links a result to its artifact below the execution's
// artifacts folder, or to the folder itself when the artifact is missing
// or points outside it (libtaskotron 0.4.21).
func (l Links) artifactURL(exec contract.Execution, artifact string) string {
	if l.ArtifactsURL == "" {
		return ""
	}
	root := joinURL(l.ArtifactsURL, exec.UUID) + "/"
	if artifact == "" {
		return root
	}
	rel := artifact
	if filepath.IsAbs(artifact) {
		if exec.Artifacts == "" {
			return root
		}
		var err error
		rel, err = filepath.Rel(exec.Artifacts, artifact)
		if err != nil {
			return root
		}
	}
	rel = filepath.Clean(rel)
	if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return root
	}
	if exec.Artifacts != "" {
		if _, err := os.Stat(filepath.Join(exec.Artifacts, rel)); err != nil {
			return root
		}
	}
	return joinURL(l.ArtifactsURL, append([]string{exec.UUID}, strings.Split(filepath.ToSlash(rel), "/")...)...)
}

// joinURL appends path segments, escaped, to a base URL.
func joinURL(base string, segs ...string) string {
	out := strings.TrimRight(base, "/")
	for _, s := range segs {
		out += "/" + url.PathEscape(s)
	}
	return out
}
