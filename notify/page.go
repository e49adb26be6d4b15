package notify

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/taskotron-go/taskotron/redact"
)

// The notifier's page: every subscription, what it is still owed, and
// the delivery state of its target (a failing webhook, its next retry).
// /subscriptions.json says the same for scripts.

func (s *Service) mountPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /subscriptions", s.page)
	mux.HandleFunc("GET /subscriptions.json", s.pageJSON)
}

// view is a subscription as shown: the webhook URL without credentials,
// never the secret.
type view struct {
	Subscription
	Target string `json:"target"`
	Filter string `json:"filter"`
	State  string `json:"state"`
}

func views(subs []Subscription) []view {
	out := make([]view, len(subs))
	for i, sub := range subs {
		sub.Webhook = redact.URL(sub.Webhook)
		st := "ok"
		switch {
		case sub.Failures > 0:
			st = "failing"
		case sub.Pending > 0:
			st = "waiting"
		}
		out[i] = view{Subscription: sub, Target: sub.Target(), Filter: sub.Filter(), State: st}
	}
	return out
}

func (s *Service) pageJSON(w http.ResponseWriter, r *http.Request) {
	subs, err := s.store.List(r.Context())
	if err != nil {
		http.Error(w, "cannot read the subscriptions", http.StatusServiceUnavailable)
		s.log.Error("notify page", "err", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"subscriptions": views(subs)})
}

func (s *Service) page(w http.ResponseWriter, r *http.Request) {
	subs, err := s.store.List(r.Context())
	if err != nil {
		http.Error(w, "cannot read the subscriptions", http.StatusServiceUnavailable)
		s.log.Error("notify page", "err", err)
		return
	}
	vs := views(subs)
	var failing []view
	for _, v := range vs {
		if v.Failures > 0 {
			failing = append(failing, v)
		}
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, map[string]any{"Subs": vs, "Failing": failing, "Window": s.cfg.DigestWindow}); err != nil {
		http.Error(w, "page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

func when(t *time.Time) string {
	if t == nil {
		return "—"
	}
	d := time.Until(*t).Round(time.Second)
	stamp := t.UTC().Format("2006-01-02 15:04:05Z")
	switch {
	case d > 0:
		return stamp + " (in " + d.String() + ")"
	case d < 0:
		return stamp + " (" + (-d).String() + " ago)"
	}
	return stamp
}

var pageTmpl = template.Must(template.New("notify").Funcs(template.FuncMap{"when": when, "id": func(n int64) string { return strconv.FormatInt(n, 10) }}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Notifications — taskotron</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2125;background:#fafafa}
header{background:#294172;color:#fff;padding:.6em 1.2em}header b{margin-right:1.2em}
main{padding:1em 1.2em;max-width:1400px}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:600;background:#f0f2f5}td.n{white-space:nowrap}.muted{color:#6b7177}
.st{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600;color:#fff}
.ok{background:#2f855a}.waiting{background:#1f6feb}.failing{background:#9b2c2c}
code{font:13px ui-monospace,monospace}
</style></head><body><header><b>taskotron</b> notifications</header><main>
<h1>Subscriptions</h1>
<p class="muted">Email digests gather the results of {{.Window}}. Subscribe with <code>taskotron notify subscribe</code>; <a href="/subscriptions.json">JSON</a>.</p>
{{if .Failing}}<h2>Failing deliveries</h2>
<table id="failing"><tr><th>#</th><th>Target</th><th>Failures in a row</th><th>Next retry</th><th>Last error</th><th>Waiting</th></tr>
{{range .Failing}}<tr><td class="n">{{.ID}}</td><td>{{.Target}}</td><td class="n">{{.Failures}}</td><td class="n">{{when .NextRetry}}</td><td>{{.LastError}}</td><td class="n">{{.Pending}}</td></tr>
{{end}}</table>{{end}}
<h2>All</h2>
{{if .Subs}}<table id="subscriptions"><tr><th>#</th><th>Target</th><th>Results</th><th>State</th><th>Waiting</th><th>Last delivered</th><th>Next retry</th><th>Since</th></tr>
{{range .Subs}}<tr id="sub-{{id .ID}}"><td class="n">{{.ID}}</td><td>{{.Target}}</td><td>{{.Filter}}</td><td><span class="st {{.State}}">{{.State}}</span></td>
<td class="n">{{.Pending}}</td><td class="n">{{when .LastDelivered}}</td><td class="n">{{if .Failures}}{{when .NextRetry}}{{else}}—{{end}}</td><td class="n muted">{{.Created.Format "2006-01-02"}}</td></tr>
{{end}}</table>{{else}}<p>No subscriptions yet.</p>{{end}}
</main></body></html>`))
