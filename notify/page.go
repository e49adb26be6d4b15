package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskotron-go/taskotron/redact"
)

// The notifier's page: every confirmed subscription, what it is still
// owed, and the delivery state of its target (a failing webhook, its next
// retry), and a form to subscribe an address (double opt-in: the
// subscription waits for the link mailed to it). /subscriptions.json says
// the same for scripts; /confirm and /unsubscribe are the mails' links.

func (s *Service) mountPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /subscriptions", s.page)
	mux.HandleFunc("GET /subscriptions.json", s.pageJSON)
	mux.HandleFunc("POST /subscribe", s.subscribe)
	mux.HandleFunc("GET /confirm", s.confirmPage)
	mux.HandleFunc("POST /confirm", s.confirm)
	mux.HandleFunc("GET /unsubscribe", s.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe", s.unsubscribe)
}

// view is a subscription as shown: the webhook URL without credentials,
// never the secret.
type view struct {
	Subscription
	Target string `json:"target"`
	Filter string `json:"filter"`
	State  string `json:"state"`
}

// maskAddress keeps an address's first letter and its domain: the page is
// public, and tells the owner and ops (who have notify list) enough.
func maskAddress(a string) string {
	at := strings.LastIndexByte(a, '@')
	if at < 1 {
		return a
	}
	return a[:1] + "…" + a[at:]
}

func views(subs []Subscription) []view {
	out := make([]view, len(subs))
	for i, sub := range subs {
		sub.Webhook = redact.URL(sub.Webhook)
		sub.Email = maskAddress(sub.Email)
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
	shown, waiting := confirmed(subs)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"subscriptions": views(shown), "unconfirmed": waiting})
}

func (s *Service) page(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, form{})
}

// form is the subscribe form as sent, and what became of it.
type form struct {
	Email, Item, Testcase, Origin string
	Outcomes                      map[string]bool
	Regressions                   bool
	// Error is the one line saying why it was refused, Field the field.
	Error, Field string
	// Sent is the address a confirmation request went to.
	Sent    string
	Expires time.Time
}

// formOutcomes are the form's checkboxes; the command line takes any name.
var formOutcomes = []string{"FAILED", "NEEDS_INSPECTION", "CRASHED", "ABORTED", "INFO", "PASSED"}

// confirmed are the subscriptions shown: those waiting for confirmation
// are strangers' claims, not shown, only counted.
func confirmed(subs []Subscription) (shown []Subscription, waiting int) {
	for _, sub := range subs {
		if sub.Confirmed == nil {
			waiting++
			continue
		}
		shown = append(shown, sub)
	}
	return shown, waiting
}

func (s *Service) render(w http.ResponseWriter, r *http.Request, code int, f form) {
	subs, err := s.store.List(r.Context())
	if err != nil {
		http.Error(w, "cannot read the subscriptions", http.StatusServiceUnavailable)
		s.log.Error("notify page", "err", err)
		return
	}
	shown, waiting := confirmed(subs)
	vs := views(shown)
	var failing []view
	for _, v := range vs {
		if v.Failures > 0 {
			failing = append(failing, v)
		}
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, map[string]any{"Subs": vs, "Failing": failing, "Window": s.cfg.DigestWindow, "Waiting": waiting,
		"Form": f, "Outcomes": formOutcomes, "TTL": days(s.limits.TTL), "PerAddress": s.limits.PerAddress}); err != nil {
		http.Error(w, "page failed", http.StatusInternalServerError)
		s.log.Error("notify page", "err", err)
		return
	}
	htmlHeaders(w)
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// htmlHeaders keep the pages out of frames (the unsubscribe button must
// not be clicked through someone else's page), their forms posting here
// only, and the links' tokens out of Referer headers.
func htmlHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// maxForm caps a form's body: a few patterns.
const maxForm = 16 << 10

// subscribe takes the form: the subscription is checked as the command
// line's is (Prepare), stored waiting for confirmation, and the address
// is mailed the link that confirms it.
func (s *Service) subscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	f := form{Outcomes: map[string]bool{}}
	refuse := func(code int, field string, err error) {
		f.Field, f.Error = field, oneLine(err.Error())
		s.render(w, r, code, f)
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "", fmt.Errorf("form: %v", err))
		return
	}
	f.Email = strings.TrimSpace(r.PostForm.Get("email"))
	f.Item, f.Testcase, f.Origin = strings.TrimSpace(r.PostForm.Get("item")), strings.TrimSpace(r.PostForm.Get("testcase")), strings.TrimSpace(r.PostForm.Get("origin"))
	f.Regressions = r.PostForm.Get("regressions") != ""
	sub := Subscription{Email: f.Email, Item: f.Item, Testcase: f.Testcase, Origin: f.Origin, Regressions: f.Regressions}
	for _, o := range r.PostForm["outcome"] {
		f.Outcomes[o] = true
		sub.Outcomes = append(sub.Outcomes, o)
	}
	if f.Email == "" {
		refuse(http.StatusBadRequest, "email", errors.New("email: enter the address to mail"))
		return
	}
	if r.PostForm.Get("webhook") != "" {
		refuse(http.StatusBadRequest, "webhook", errors.New("webhook: webhooks are made with taskotron notify subscribe --webhook, not on this page"))
		return
	}
	if err := sub.Prepare(""); err != nil {
		field := ""
		var fe *FieldError
		if errors.As(err, &fe) {
			field = fe.Field
		}
		refuse(http.StatusBadRequest, field, err)
		return
	}
	token, err := s.store.AddPending(r.Context(), &sub, s.limits)
	if err != nil {
		var fe *FieldError
		switch {
		case errors.As(err, &fe):
			refuse(http.StatusTooManyRequests, fe.Field, err)
		case errors.Is(err, ErrTooManyPending):
			refuse(http.StatusServiceUnavailable, "", err)
		default:
			s.log.Error("notify: storing a subscription from the page", "err", err)
			refuse(http.StatusServiceUnavailable, "", errors.New("the subscription could not be stored; try again later"))
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.del.mail.Send(ctx, confirmation(sub, s.public, token)); err != nil {
		// Not sent, not kept: it would only take one of the address's
		// places until it expired.
		bctx, bcancel := bookkeeping(r.Context())
		defer bcancel()
		s.store.Remove(bctx, sub.ID)
		s.log.Warn("notify: confirmation mail failed", "subscription", sub.ID, "err", err)
		refuse(http.StatusServiceUnavailable, "", errors.New("the confirmation mail could not be sent; try again later"))
		return
	}
	s.confirmations.Add(1)
	s.log.Info("notify: subscription waits for confirmation", "subscription", sub.ID, "filter", sub.Filter(), "expires", sub.Expires)
	s.render(w, r, http.StatusOK, form{Sent: sub.Email, Expires: *sub.Expires, Outcomes: map[string]bool{}})
}

// confirmation is the mail asking the address's owner to confirm.
func confirmation(sub Subscription, base, token string) Mail {
	var b strings.Builder
	fmt.Fprintf(&b, "Someone, maybe you, asked at %s/ to mail %s the taskotron results of:\n\n    %s\n\n", base, sub.Email, sub.Filter())
	fmt.Fprintf(&b, "To confirm, open this link before %s:\n\n    %s\n\n", sub.Expires.UTC().Format("2006-01-02 15:04 UTC"), ConfirmURL(base, token))
	b.WriteString("If it was not you, ignore this mail: nothing will be sent, and the request is forgotten.\n")
	return Mail{To: sub.Email, Subject: "[taskotron] confirm your subscription: " + oneLine(sub.Filter()), Body: b.String(), ID: uuid.NewString() + "@taskotron.notify"}
}

// days says a whole number of days as such ("2 days", not 48h0m0s).
func days(d time.Duration) string {
	if d <= 0 || d%(24*time.Hour) != 0 {
		return d.String()
	}
	if n := d / (24 * time.Hour); n != 1 {
		return strconv.Itoa(int(n)) + " days"
	}
	return "1 day"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// button is a message page's one form: what a link asks for is done by
// it, never by the GET, since mail scanners follow links.
type button struct{ ID, Action, Label string }

func (s *Service) message(w http.ResponseWriter, code int, title, text string, subs []Subscription, do *button) {
	var b bytes.Buffer
	if err := msgTmpl.Execute(&b, map[string]any{"Title": title, "Text": text, "Subs": views(subs), "Button": do}); err != nil {
		http.Error(w, "page failed", http.StatusInternalServerError)
		return
	}
	htmlHeaders(w)
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// confirmPage shows the button that confirms: a GET changes nothing, so a
// scanner opening the mailed link subscribes no one.
func (s *Service) confirmPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		s.message(w, http.StatusNotFound, "Not confirmed", "This confirmation link has no token: open the link as it was mailed.", nil, nil)
		return
	}
	s.message(w, http.StatusOK, "Confirm the subscription", "Mail matching results to the address this link was sent to?", nil,
		&button{ID: "confirm", Action: "/confirm?" + url.Values{"token": {token}}.Encode(), Label: "Confirm"})
}

// confirm activates the subscription of the link's token: the page's button.
func (s *Service) confirm(w http.ResponseWriter, r *http.Request) {
	sub, err := s.store.Confirm(r.Context(), r.URL.Query().Get("token"))
	switch {
	case errors.Is(err, ErrBadToken):
		s.message(w, http.StatusNotFound, "Not confirmed", "This confirmation link is unknown or has expired ("+days(s.limits.TTL)+" after the request): subscribe again.", nil, nil)
		return
	case err != nil:
		s.log.Error("notify: confirming a subscription", "err", err)
		s.message(w, http.StatusServiceUnavailable, "Not confirmed", "The subscription could not be confirmed; try the link again later.", nil, nil)
		return
	}
	s.log.Info("notify: subscription confirmed", "subscription", sub.ID)
	s.message(w, http.StatusOK, "Subscription confirmed", "Matching results will be mailed to "+sub.Email+"; every mail has a link to stop them.", []Subscription{sub}, nil)
}

// unsubscribePage shows what a link would stop, with the button that
// does: a GET changes nothing, since mail scanners follow links.
func (s *Service) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	tokens := r.URL.Query()["t"]
	subs, err := s.store.ByUnsubscribe(r.Context(), tokens)
	if err != nil {
		s.log.Error("notify: reading subscriptions to stop", "err", err)
		s.message(w, http.StatusServiceUnavailable, "Unsubscribe", "The subscriptions could not be read; try the link again later.", nil, nil)
		return
	}
	if len(subs) == 0 {
		s.message(w, http.StatusNotFound, "Unsubscribe", "This link stops no subscription: it is unknown, or they were stopped already.", nil, nil)
		return
	}
	s.message(w, http.StatusOK, "Unsubscribe", "Stop these subscriptions?", subs,
		&button{ID: "unsubscribe", Action: "/unsubscribe?" + url.Values{"t": tokens}.Encode(), Label: "Unsubscribe"})
}

// unsubscribe removes the subscriptions of the link's tokens: the page's
// button, and the one-click POST of RFC 8058 (body
// List-Unsubscribe=One-Click) that mail clients send.
func (s *Service) unsubscribe(w http.ResponseWriter, r *http.Request) {
	gone, err := s.store.Unsubscribe(r.Context(), r.URL.Query()["t"])
	if err != nil {
		s.log.Error("notify: unsubscribing", "err", err)
		s.message(w, http.StatusServiceUnavailable, "Unsubscribe", "The subscriptions could not be stopped; try again later.", nil, nil)
		return
	}
	if len(gone) == 0 {
		s.message(w, http.StatusNotFound, "Unsubscribe", "This link stops no subscription: it is unknown, or they were stopped already.", nil, nil)
		return
	}
	for _, sub := range gone {
		s.unsubscribes.Add(1)
		s.log.Info("notify: unsubscribed by link", "subscription", sub.ID)
	}
	s.message(w, http.StatusOK, "Unsubscribed", "Nothing more will be mailed for these subscriptions.", gone, nil)
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

const style = `<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2125;background:#fafafa}
header{background:#294172;color:#fff;padding:.6em 1.2em}header b{margin-right:1.2em}header a{color:#fff}
main{padding:1em 1.2em;max-width:1400px}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:600;background:#f0f2f5}td.n{white-space:nowrap}.muted{color:#6b7177}
.st{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600;color:#fff}
.ok{background:#2f855a}.waiting{background:#1f6feb}.failing{background:#9b2c2c}
code{font:13px ui-monospace,monospace}
form#subscribe{background:#fff;border:1px solid #e3e3e3;padding:.8em 1em;max-width:46em}
form#subscribe label{display:block;margin:.35em 0}form#subscribe input[type=text],form#subscribe input[type=email]{width:24em;max-width:100%;font:inherit}
fieldset{border:0;padding:0;margin:.35em 0}fieldset label{display:inline-block!important;margin-right:1em!important}
.error{color:#9b2c2c;font-weight:600}.bad{outline:2px solid #9b2c2c}.sent{color:#2f855a;font-weight:600}
button{font:inherit;padding:.25em 1em}
</style>`

var pageTmpl = template.Must(template.New("notify").Funcs(template.FuncMap{"when": when, "id": func(n int64) string { return strconv.FormatInt(n, 10) }}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Notifications — taskotron</title>
` + style + `</head><body><header><b>taskotron</b> notifications</header><main>
<h1>Subscriptions</h1>
<p class="muted">Email digests gather the results of {{.Window}}. <a href="#subscribe">Subscribe an address</a> below, or with <code>taskotron notify subscribe</code>; <a href="/subscriptions.json">JSON</a>.</p>
{{if .Failing}}<h2>Failing deliveries</h2>
<table id="failing"><tr><th>#</th><th>Target</th><th>Failures in a row</th><th>Next retry</th><th>Last error</th><th>Waiting</th></tr>
{{range .Failing}}<tr><td class="n">{{.ID}}</td><td>{{.Target}}</td><td class="n">{{.Failures}}</td><td class="n">{{when .NextRetry}}</td><td>{{.LastError}}</td><td class="n">{{.Pending}}</td></tr>
{{end}}</table>{{end}}
<h2>All</h2>
{{if .Subs}}<table id="subscriptions"><tr><th>#</th><th>Target</th><th>Results</th><th>State</th><th>Waiting</th><th>Last delivered</th><th>Next retry</th><th>Since</th></tr>
{{range .Subs}}<tr id="sub-{{id .ID}}"><td class="n">{{.ID}}</td><td>{{.Target}}</td><td>{{.Filter}}</td><td><span class="st {{.State}}">{{.State}}</span></td>
<td class="n">{{.Pending}}</td><td class="n">{{when .LastDelivered}}</td><td class="n">{{if .Failures}}{{when .NextRetry}}{{else}}—{{end}}</td><td class="n muted">{{.Created.Format "2006-01-02"}}</td></tr>
{{end}}</table>{{else}}<p>No subscriptions yet.</p>{{end}}
{{if .Waiting}}<p class="muted" id="unconfirmed">{{.Waiting}} more wait for their address to confirm them.</p>{{end}}
<h2>Subscribe</h2>
{{with .Form}}{{if .Sent}}<p class="sent" id="sent">A confirmation link was mailed to {{.Sent}}; nothing is sent before it is opened (by {{.Expires.Format "2006-01-02 15:04 UTC"}}).</p>{{end}}{{end}}
<form id="subscribe" method="post" action="/subscribe">
{{with .Form}}{{if .Error}}<p class="error" id="error" role="alert">{{.Error}}</p>{{end}}
<label>Email <input type="email" name="email" required maxlength="254" value="{{.Email}}"{{if eq .Field "email"}} class="bad" autofocus{{end}}></label>
<label>Items <input type="text" name="item" maxlength="1000" placeholder="python-* (empty: every item)" value="{{.Item}}"{{if eq .Field "item"}} class="bad" autofocus{{end}}></label>
<label>Testcases <input type="text" name="testcase" maxlength="1000" placeholder="dist.* (empty: every testcase)" value="{{.Testcase}}"{{if eq .Field "testcase"}} class="bad" autofocus{{end}}></label>
<fieldset{{if eq .Field "outcome"}} class="bad"{{end}}><legend>Outcomes (none ticked: every outcome)</legend>
{{$f := .}}{{range $.Outcomes}}<label><input type="checkbox" name="outcome" value="{{.}}"{{if index $f.Outcomes .}} checked{{end}}> {{.}}</label>{{end}}</fieldset>
<label>Origin <input type="text" name="origin" maxlength="1000" placeholder="kernelci (empty: every origin)" value="{{.Origin}}"{{if eq .Field "origin"}} class="bad" autofocus{{end}}></label>
<label><input type="checkbox" name="regressions" value="1"{{if .Regressions}} checked{{end}}> Regressions only: results worse than the same testcase and arch on the package's previous build</label>
{{end}}<p><button type="submit">Subscribe</button></p>
<p class="muted">Patterns are globs (<code>*</code>, <code>?</code>, <code>[a-z]</code>, <code>{a,b}</code>). The address is mailed a link to confirm; unconfirmed subscriptions are forgotten after {{.TTL}}, and at most {{.PerAddress}} wait per address. Every digest has a link to stop it. Webhooks are made with <code>taskotron notify subscribe --webhook</code> only.</p>
</form>
</main></body></html>`))

var msgTmpl = template.Must(template.New("notify-message").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>{{.Title}} — taskotron</title>
` + style + `</head><body><header><b>taskotron</b> <a href="/">notifications</a></header><main>
<h1>{{.Title}}</h1><p id="message">{{.Text}}</p>
{{if .Subs}}<table id="subscriptions"><tr><th>#</th><th>Target</th><th>Results</th></tr>
{{range .Subs}}<tr><td class="n">{{.ID}}</td><td>{{.Target}}</td><td>{{.Filter}}</td></tr>{{end}}</table>{{end}}
{{with .Button}}<form id="{{.ID}}" method="post" action="{{.Action}}">
{{if eq .ID "unsubscribe"}}<input type="hidden" name="List-Unsubscribe" value="One-Click">{{end}}<p><button type="submit">{{.Label}}</button></p></form>{{end}}
</main></body></html>`))
