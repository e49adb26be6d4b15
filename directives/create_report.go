package directives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"

	"github.com/taskotron-go/taskotron/contract"
)

var defaultReport = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Task}} — {{.Item}}</title>
<style>body{font-family:sans-serif}td,th{padding:.2em .6em;text-align:left}
.PASSED{background:#cfc}.INFO{background:#eef}.FAILED{background:#fcc}.NEEDS_INSPECTION{background:#ffc}.ABORTED,.CRASHED{background:#ddd}</style>
</head><body>
<h1>{{.Task}}</h1>
<p>Item <b>{{.Item}}</b> ({{.Type}}), arch {{.Arch}}, execution {{.UUID}}. Overall: <b class="{{.Overall}}">{{.Overall}}</b> ({{.Summary}}).</p>
<table><tr><th>check</th><th>item</th><th>outcome</th><th>note</th><th>arch</th><th>artifact</th></tr>
{{range .Results}}<tr class="{{.Outcome}}"><td>{{.CheckName}}</td><td>{{.Item}}</td><td>{{.Outcome}}</td><td>{{.Note}}</td><td>{{.Arch}}</td><td>{{if .Artifact}}<a href="{{.Artifact}}">{{.Artifact}}</a>{{end}}</td></tr>
{{end}}</table></body></html>
`))

// Report is what a report template sees.
type Report struct {
	Task, Item, Type, Arch, UUID string
	Overall                      contract.Outcome
	Summary                      string
	Results                      []contract.Result
}

// createReport writes an HTML summary of results into the artifacts
// (reference §2.4): results or file; artifactsdir; path (report.html);
// template, an html/template file in the task (not jinja2).
func createReport(ctx context.Context, params map[string]any, env *Env) (any, error) {
	data, err := resultsInput(params, env, "results")
	if err != nil {
		return nil, err
	}
	rs, err := parseResults(data, env)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	dir, _ := params["artifactsdir"].(string)
	if dir == "" {
		return nil, errors.New("artifactsdir is required (usually ${artifactsdir})")
	}
	name, _ := params["path"].(string)
	if name == "" {
		name = "report.html"
	}
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("path %q must be a plain name inside artifactsdir", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, Infra(fmt.Errorf("artifacts folder: %w", err))
	}
	realDir, err := resolveInside(dir, dir, env.ArtifactsDir)
	if err != nil {
		return nil, fmt.Errorf("artifactsdir: %w", err)
	}
	tmpl := defaultReport
	if t, _ := params["template"].(string); t != "" {
		src, err := readRunFile(env, t)
		if err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
		tmpl, err = template.New(filepath.Base(t)).Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", t, err)
		}
	}
	s := func(k string) string { v, _ := env.Vars[k].(string); return v }
	rep := Report{Task: s("taskname"), Item: s("item"), Type: s("type"), Arch: s("arch"), UUID: s("uuid"), Overall: contract.Passed, Results: rs}
	var all []contract.Outcome
	for _, r := range rs {
		rep.Overall = contract.Worst(rep.Overall, r.Outcome)
		all = append(all, r.Outcome)
	}
	rep.Summary = contract.Summary(all)
	if len(rs) == 0 {
		rep.Summary = "no results"
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, rep); err != nil {
		return nil, fmt.Errorf("report template: %w", err)
	}
	out := filepath.Join(realDir, name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, Infra(err)
	}
	// A folder on the way may be a symlink the task made.
	if _, err := resolveInside(filepath.Dir(out), name, env.ArtifactsDir); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	if fi, err := os.Lstat(out); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("path %q is a symlink; the report is not written through it", name)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return nil, Infra(fmt.Errorf("writing report: %w", err))
	}
	return out, nil
}

func init() {
	Register("create_report", Func(createReport))
}
