package labs

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The boards page: what each lab offers, when it was last seen and what it
// runs now, beside the labs' request queue (the executions' queue is at
// /queue).

func (h *Hub) mountPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /boards", h.boardsPage)
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

var pageFuncs = template.FuncMap{
	"ago": ago,
	"agoPtr": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return ago(*t) + " ago"
	},
	"path": url.PathEscape,
}

var boardsTmpl = template.Must(template.New("boards").Funcs(pageFuncs).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Boards — taskotron</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2125;background:#fafafa}
header{background:#294172;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.2em;max-width:1400px}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:600;background:#f0f2f5}td.n{white-space:nowrap}.muted{color:#6b7177}
.l{display:inline-block;background:#eef1f6;border-radius:.4em;padding:0 .4em;margin:0 .2em .2em 0;font:13px ui-monospace,monospace}
.st{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600;color:#fff}
.queued{background:#6b7177}.running,.reporting{background:#1f6feb}.idle{background:#2f855a}.offline{background:#9b2c2c}
</style></head><body><header><a href="/"><b>taskotron</b></a><a href="/queue">Queue</a><a href="/boards">Boards</a><a href="/executions">Executions</a><a href="/">Results</a></header><main>
<h1>Boards</h1>
{{if .Boards}}<table><tr><th>Board</th><th>Lab</th><th>Labels</th><th>Last seen</th><th>Now</th></tr>
{{range .Boards}}<tr><td class="n">{{.B.Name}}</td><td class="n">{{.B.Lab}}</td><td>{{range $k, $v := .B.Labels}}<span class="l">{{$k}}={{$v}}</span>{{end}}</td>
<td class="n">{{agoPtr .B.LastSeen}}{{if .B.Agent}} <span class="muted">{{.B.Agent}}</span>{{end}}</td>
<td class="n">{{if .B.Running}}<span class="st running">running</span> <a href="/executions/{{path .B.Running}}">{{.Task}}</a>{{else if .Online}}<span class="st idle">idle</span>{{else}}<span class="st offline">offline</span>{{end}}</td></tr>{{end}}</table>
{{else}}<p class="muted">No boards yet: a lab agent registers its board when it first asks for work (taskotron lab), or taskotron board put adds one.</p>{{end}}
<h2>Lab requests: {{.Counts.queued}} queued, {{.Counts.running}} running</h2>
{{if .Queue}}<table><tr><th>#</th><th>Task</th><th>Item</th><th>Where</th><th>Priority</th><th>State</th><th>Lab</th><th>Attempt</th><th>Since</th></tr>
{{range $i, $r := .Queue}}<tr><td class="n">{{$i}}</td><td class="n"><a href="/executions/{{path $r.ID}}">{{$r.TaskName}}</a></td><td>{{$r.Item}}</td>
<td>{{range $k, $v := $r.Where}}<span class="l">{{$k}}={{$v}}</span>{{end}}</td><td class="n">{{$r.Priority}}</td>
<td class="n"><span class="st {{$r.State}}">{{$r.State}}</span></td><td class="n">{{$r.Lab}}{{if $r.Board}}/{{$r.Board}}{{end}}</td><td class="n">{{$r.Attempt}}</td><td class="n">{{ago $r.Created}}</td></tr>{{end}}</table>
{{else}}<p class="muted">No request waits or runs.</p>{{end}}
</main></body></html>`))

func (h *Hub) boardsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	bs, err := h.store.Boards(ctx)
	if err != nil {
		h.serverError(w, "boards", err)
		return
	}
	queue, err := h.store.List(ctx, ListQuery{States: []string{StateQueued, StateRunning, StateReporting}, Limit: 500})
	if err != nil {
		h.serverError(w, "boards", err)
		return
	}
	counts, err := h.store.Counts(ctx)
	if err != nil {
		h.serverError(w, "boards", err)
		return
	}
	type row struct {
		B      Board
		Task   string
		Online bool
	}
	tasks := map[string]string{}
	for _, q := range queue {
		tasks[q.ID] = q.TaskName + " " + q.Item
	}
	rows := make([]row, len(bs))
	for i, b := range bs {
		// Online: it polled within a poll's wait and a little more.
		online := b.LastSeen != nil && time.Since(*b.LastSeen) < h.opts.PollWait+h.opts.LeaseTimeout
		t := tasks[b.Running]
		if t == "" {
			t = b.Running
		}
		rows[i] = row{B: b, Task: t, Online: online}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := boardsTmpl.Execute(w, map[string]any{"Boards": rows, "Queue": queue, "Counts": counts}); err != nil {
		h.log.Error("boards page", "err", err)
	}
}
