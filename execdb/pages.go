package execdb

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The pages: the queue (what waits, in the order it will run; what runs),
// the history of executions with filters, and one execution (its timeline,
// attempts, results and a log that follows the run live).

func (h *Handler) mountPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /queue", h.queuePage)
	mux.HandleFunc("GET /executions", h.listPage)
	mux.HandleFunc("GET /executions/{uuid}", h.executionPage)
	// reporter.execdb_url links results' groups to <url>/jobs/<uuid>.
	mux.HandleFunc("GET /jobs/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/executions/"+url.PathEscape(r.PathValue("uuid")), http.StatusFound)
	})
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string { return since(time.Since(t)) },
	"agoPtr": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return since(time.Since(*t))
	},
	"until": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return "in " + since(time.Until(*t))
	},
	"took": func(a, b *time.Time) string {
		if a == nil {
			return ""
		}
		end := time.Now()
		if b != nil {
			end = *b
		}
		return since(end.Sub(*a))
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"inc":   func(i int) int { return i + 1 },
	"path":  url.PathEscape,
	"query": url.QueryEscape,
}

func since(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m" + strconv.Itoa(int(d.Seconds())%60) + "s"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h" + strconv.Itoa(int(d.Minutes())%60) + "m"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

const layout = `{{define "top"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} — taskotron</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2125;background:#fafafa}
header{background:#294172;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.2em;max-width:1400px}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:600;background:#f0f2f5}td.n{white-space:nowrap}.muted{color:#6b7177}
.st{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600;color:#fff}
.queued{background:#6b7177}.running{background:#1f6feb}.waiting_retry{background:#b7791f}.retried{background:#b7791f}
.finished{background:#2f855a}.crashed{background:#9b2c2c}.aborted{background:#6b46c1}
.outcome{font-weight:600}.PASSED,.INFO{color:#2f855a}.FAILED,.NEEDS_INSPECTION{color:#9b2c2c}.ABORTED,.CRASHED{color:#6b46c1}
pre.log{background:#16181d;color:#e6e6e6;padding:.8em;overflow:auto;max-height:70vh;font:13px/1.35 ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
form.filters{margin:.4em 0 1em}.error{color:#9b2c2c;font-weight:600}form.filters input,form.filters select{margin-right:.5em}
</style></head><body><header><a href="/"><b>taskotron</b></a><a href="/queue">Queue</a><a href="/executions">Executions</a><a href="/">Results</a></header><main>{{end}}
{{define "bottom"}}</main></body></html>{{end}}
{{define "state"}}<span class="st {{.}}">{{.}}</span>{{end}}`

var queueTmpl = template.Must(template.New("queue").Funcs(funcs).Parse(layout + `{{template "top" .}}
<h1>Queue</h1>
<h2>Running ({{len .Q.Running}})</h2>
{{if .Q.Running}}<table><tr><th>Task</th><th>Item</th><th>Arch</th><th>Worker</th><th>Action</th><th>Attempt</th><th>Running for</th></tr>
{{range .Q.Running}}<tr><td class="n"><a href="/executions/{{path .UUID}}">{{.TaskName}}</a></td><td>{{.Item}}</td><td class="n">{{.Arch}}</td>
<td class="n">{{.Worker}}</td><td>{{.Action}}</td><td class="n">{{.Attempt}}</td><td class="n">{{took .Started nil}}</td></tr>{{end}}</table>
{{else}}<p class="muted">Nothing runs.</p>{{end}}
<h2>Waiting ({{len .Q.Waiting}}), in the order they will run</h2>
{{if .Q.Waiting}}<table><tr><th>#</th><th>Task</th><th>Item</th><th>Arch</th><th>Priority</th><th>Waiting for</th><th>State</th></tr>
{{range $i, $e := .Q.Waiting}}<tr><td class="n">{{inc $i}}</td><td class="n"><a href="/executions/{{path .UUID}}">{{.TaskName}}</a></td><td>{{.Item}}</td>
<td class="n">{{.Arch}}</td><td class="n">{{.Priority}}</td><td class="n">{{ago .Created}}</td>
<td class="n">{{template "state" .State}}{{if .Attempt}} <span class="muted">after attempt {{.Attempt}}</span>{{end}}</td></tr>{{end}}</table>
{{else}}<p class="muted">Nothing waits.</p>{{end}}
{{if .Q.Retrying}}<h2>Waiting for a retry ({{len .Q.Retrying}}), soonest first</h2>
<table><tr><th>Task</th><th>Item</th><th>Arch</th><th>Worker</th><th>Attempt</th><th>Next attempt</th><th>Why</th></tr>
{{range .Q.Retrying}}<tr><td class="n"><a href="/executions/{{path .UUID}}">{{.TaskName}}</a></td><td>{{.Item}}</td><td class="n">{{.Arch}}</td>
<td class="n">{{.Worker}}</td><td class="n">{{.Attempt}}</td><td class="n">{{until .RetryAt}}</td><td>{{.Reason}}</td></tr>{{end}}</table>{{end}}
{{template "bottom"}}`))

var listTmpl = template.Must(template.New("list").Funcs(funcs).Parse(layout + `{{template "top" .}}
<h1>Executions</h1>
<form class="filters" method="get" action="/executions">
<select name="state"><option value="">any state</option>{{range .States}}<option{{if eq . $.State}} selected{{end}}>{{.}}</option>{{end}}</select>
<input name="item" placeholder="item" value="{{.Item}}"><input name="taskname" placeholder="task" value="{{.Task}}">
<input name="arch" placeholder="arch" value="{{.Arch}}" size="8"><input name="since" placeholder="since (2h, 2026-12-01)" value="{{.Since}}" size="18"><button>Filter</button></form>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
{{if .List}}<table><tr><th>Task</th><th>Item</th><th>Arch</th><th>State</th><th>Outcome</th><th>Results</th><th>Queued</th><th>Took</th></tr>
{{range .List}}<tr><td class="n"><a href="/executions/{{path .UUID}}">{{.TaskName}}</a></td><td>{{.Item}}</td><td class="n">{{.Arch}}</td>
<td class="n">{{template "state" .State}}</td><td class="n">{{.Outcome}}</td><td class="n">{{.Results}}</td><td class="n">{{ago .Created}} ago</td><td class="n">{{took .Started .Finished}}</td></tr>{{end}}</table>
{{else}}<p class="muted">No executions.</p>{{end}}
<p>{{if .Prev}}<a href="{{.Prev}}">← newer</a> {{end}}{{if .Next}}<a href="{{.Next}}">older →</a>{{end}}</p>
{{template "bottom"}}`))

var executionTmpl = template.Must(template.New("execution").Funcs(funcs).Parse(layout + `{{template "top" .}}
{{with .D}}<h1>{{.TaskName}} on {{.Item}} <span class="muted">({{.Arch}})</span> {{template "state" .State}}</h1>
<table>
<tr><th>uuid</th><td>{{.UUID}}</td></tr>
<tr><th>item</th><td>{{.Item}} <span class="muted">{{.ItemType}}</span></td></tr>
<tr><th>queued</th><td>{{stamp .Created}} UTC, {{ago .Created}} ago{{if .Rule}}, by rule {{.Rule}}{{end}}{{if .MsgID}}, message {{.MsgID}}{{end}}, priority {{.Priority}}</td></tr>
<tr><th>now</th><td>{{template "state" .State}} attempt {{.Attempt}}{{if .Worker}} on {{.Worker}}{{end}}{{if .Action}}, in action <b>{{.Action}}</b>{{end}}{{if .RetryAt}}, next attempt {{until .RetryAt}}{{end}}{{if .Reason}} — {{.Reason}}{{end}}</td></tr>
{{if .Finished}}<tr><th>ended</th><td>{{.ExecutionStatus}}, {{.Outcome}}, {{.Results}} result{{if ne .Results 1}}s{{end}}, ran {{took .Started .Finished}}</td></tr>{{end}}
<tr><th>artifacts</th><td><a href="/artifacts/{{path .UUID}}/">artifacts of this execution</a></td></tr>
</table>
<h2>Results</h2>
{{if $.Results}}<table><tr><th>Testcase</th><th>Outcome</th><th>Item</th><th>Arch</th><th>Note</th><th></th></tr>
{{range $.Results}}<tr><td class="n"><a href="/results/{{.ID}}">{{.Testcase}}</a></td><td class="n"><span class="outcome {{.Outcome}}">{{.Outcome}}</span></td><td>{{.Item}}</td><td class="n">{{.Arch}}</td><td>{{.Note}}</td>
<td class="n">{{if .RefURL}}<a href="{{.RefURL}}">details</a>{{end}}</td></tr>{{end}}</table>
<p><a href="/groups/{{path .UUID}}">its group in ResultsDB</a></p>
{{else if $.ResultsError}}<p class="muted">The results could not be read: {{$.ResultsError}}.</p>
{{else}}<p class="muted">No results yet.</p>{{end}}
<h2>Attempts</h2>
{{if .Attempts}}<table><tr><th>#</th><th>State</th><th>Worker</th><th>Started</th><th>Took</th><th>Why</th></tr>
{{range .Attempts}}<tr><td class="n">{{.Attempt}}</td><td class="n">{{template "state" .State}}</td><td class="n">{{.Worker}}</td><td class="n">{{agoPtr .Started}} ago</td><td class="n">{{took .Started .Ended}}</td><td>{{.Reason}}{{if .Outcome}} {{.Outcome}}{{end}}</td></tr>{{end}}</table>
{{else}}<p class="muted">Not run yet.</p>{{end}}
<h2>Timeline</h2>
<table><tr><th>When</th><th>State</th><th>Attempt</th><th>What</th></tr>
{{range .Timeline}}<tr><td class="n">{{stamp .Time}}</td><td class="n">{{template "state" .State}}</td><td class="n">{{.Attempt}}</td><td>{{if .Worker}}{{.Worker}} {{end}}{{if .Action}}action {{.Action}} {{end}}{{.Reason}}{{if .Outcome}} {{.Outcome}}{{end}}</td></tr>{{end}}</table>
{{end}}
<h2>Log{{if .Log}}: {{.Log.Name}} <span class="muted">(attempt {{.Log.Attempt}})</span>{{end}}</h2>
{{if .D.Logs}}<p>{{range .D.Logs}}<a href="?attempt={{.Attempt}}&amp;log={{query .Name}}">{{.Attempt}}/{{.Name}}</a> <span class="muted">{{.Size}} B</span> · {{end}}</p>{{end}}
{{if .Log}}<pre class="log" id="log" data-src="/api/v2.0/executions/{{path .D.UUID}}/logs/{{.Log.Attempt}}/{{path .Log.Name}}"></pre>
<p class="muted" id="logstate">loading…</p>{{else}}<p class="muted">No log has arrived yet.</p>{{end}}
<script>
(function(){
  // The log follows the run by byte offset (a chunk may end inside a
  // character: the decoder keeps it for the next one). Once the attempt is
  // over, or while nothing is shown, the page reloads when the execution
  // has moved on (finished, retried, started), to show where it is now.
  var api="/api/v2.0/executions/{{path .D.UUID}}",shown="{{.D.State}}",attempt={{.D.Attempt}},terminal={{.Terminal}};
  function movedOn(then){
    fetch(api).then(function(r){return r.json();}).then(function(e){
      if(e.state!==shown||e.attempt!==attempt){location.reload();}else if(then){then();}
    }).catch(function(){if(then){then();}});
  }
  var pre=document.getElementById("log");
  if(!pre){
    if(!terminal){(function watch(){movedOn(function(){setTimeout(watch,3000);});})();}
    return;
  }
  var st=document.getElementById("logstate"),src=pre.dataset.src,off=0,dec=new TextDecoder();
  function next(){
    fetch(src+"?offset="+off+"&wait=25s").then(function(r){
      if(!r.ok){st.textContent="log: HTTP "+r.status;return;}
      var fin=r.headers.get("X-Log-Final")==="true";
      return r.arrayBuffer().then(function(b){
        if(b.byteLength||fin){
          var t=dec.decode(new Uint8Array(b),{stream:!fin});
          var end=pre.scrollTop+pre.clientHeight>=pre.scrollHeight-4;
          if(t.length){pre.appendChild(document.createTextNode(t));}
          off+=b.byteLength;
          if(end){pre.scrollTop=pre.scrollHeight;}
        }
        if(fin){st.textContent="complete";if(!terminal){movedOn();}}else{st.textContent="following the run…";next();}
      });
    }).catch(function(){st.textContent="connection lost; retrying…";setTimeout(next,2000);});
  }
  next();
})();
</script>
{{template "bottom"}}`))

func (h *Handler) render(w http.ResponseWriter, t *template.Template, data any) {
	h.renderCode(w, http.StatusOK, t, data)
}

func (h *Handler) renderCode(w http.ResponseWriter, code int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := t.Execute(w, data); err != nil {
		h.log.Error("executions page", "err", err)
	}
}

func (h *Handler) queuePage(w http.ResponseWriter, r *http.Request) {
	q, err := h.store.Queue(r.Context(), 500)
	if err != nil {
		h.serverError(w, "queue", err)
		return
	}
	h.render(w, queueTmpl, map[string]any{"Title": "Queue", "Q": q})
}

func (h *Handler) listPage(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, page, err := readQuery(v)
	if err != nil {
		h.renderCode(w, http.StatusBadRequest, listTmpl, map[string]any{"Title": "Executions", "States": States, "State": v.Get("state"), "Item": v.Get("item"),
			"Task": v.Get("taskname"), "Arch": v.Get("arch"), "Since": v.Get("since"), "Error": err.Error()})
		return
	}
	limit := q.Limit - 1
	list, err := h.store.List(r.Context(), q)
	if err != nil {
		h.serverError(w, "executions", err)
		return
	}
	link := func(p int) string {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(p))
		return "/executions?" + v.Encode()
	}
	data := map[string]any{"Title": "Executions", "States": States, "State": v.Get("state"), "Item": q.Item, "Task": q.TaskName, "Arch": q.Arch, "Since": v.Get("since")}
	if len(list) > limit {
		list, data["Next"] = list[:limit], link(page+1)
	}
	if page > 0 {
		data["Prev"] = link(page - 1)
	}
	data["List"] = list
	h.render(w, listTmpl, data)
}

func (h *Handler) executionPage(w http.ResponseWriter, r *http.Request) {
	d, err := h.store.Get(r.Context(), r.PathValue("uuid"))
	if errors.Is(err, ErrNotFound) {
		http.Error(w, "execution not found", http.StatusNotFound)
		return
	}
	if err != nil {
		h.serverError(w, "execution", err)
		return
	}
	data := map[string]any{"Title": d.TaskName + " on " + d.Item, "D": d, "Terminal": terminal(d.State)}
	if h.opts.Results != nil {
		rs, err := h.opts.Results(r.Context(), d.UUID)
		if err != nil {
			h.log.Error("execution page: its results", "uuid", d.UUID, "err", err)
			data["ResultsError"] = "the results database failed"
		}
		data["Results"] = rs
	}
	// The log shown: the one asked for, else the runner's log of the last
	// attempt that has one.
	var shown *LogFile
	want := r.URL.Query().Get("log")
	wantAttempt, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
	for i := range d.Logs {
		f := &d.Logs[i]
		if want != "" && f.Name == want && f.Attempt == wantAttempt {
			shown = f
		}
		if want == "" && f.Name == "taskotron.log" && (shown == nil || f.Attempt > shown.Attempt) {
			shown = f
		}
	}
	if shown == nil && want == "" && d.Attempt > 0 && (d.State == "running" || d.State == "queued") {
		// The run started and its log is about to come.
		shown = &LogFile{Attempt: d.Attempt, Name: "taskotron.log"}
	}
	if shown != nil {
		data["Log"] = shown
	}
	h.render(w, executionTmpl, data)
}
