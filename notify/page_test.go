package notify_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// form posts the page's subscribe form.
func (r *rig) form(v url.Values) (int, string) {
	r.t.Helper()
	resp, err := http.PostForm(r.page+"/subscribe", v)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

var formError = regexp.MustCompile(`<p class="error" id="error" role="alert">([^<]*)</p>`)

// errorOn is the one line the form shows refused, "" when none.
func errorOn(page string) string {
	m := formError.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func (r *rig) mailsTo(addr string) []message {
	var out []message
	for _, m := range r.mails() {
		if strings.Trim(m.To, "<>") == addr {
			out = append(out, m)
		}
	}
	return out
}

func (r *rig) events() int {
	r.t.Helper()
	resp, err := http.Get(r.page + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`\ntaskotron_notify_events_total (\d+)\n`).FindSubmatch(raw)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// press is a page's button: a POST to its form's action.
func press(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// oneClick is what a mail client sends for RFC 8058's one-click
// unsubscribe: a POST to the List-Unsubscribe link.
func oneClick(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

var (
	confirmLink     = regexp.MustCompile(`http://\S+/confirm\?token=\S+`)
	unsubscribeLink = regexp.MustCompile(`stop it: (http://\S+/unsubscribe\?t=\S+)`)
)

// Someone subscribes on the page; nothing matches until the link mailed
// to the address is opened; then matching results are mailed, each digest
// with the link that stops the subscription (also as List-Unsubscribe);
// a mail client's one-click POST on it stops it, and nothing more comes.
func TestSubscribeOnThePageConfirmAndUnsubscribe(t *testing.T) {
	r := newRig(t, rigOptions{window: "1s"})
	r.startSMTP()
	// Another address, from the command line: confirmed at once; its mail
	// shows when the notifier got to later results.
	r.cli("subscribe", "--email", "other@example.org", "--item", "sentinel-*")
	r.start()

	if code, page := get(t, r.page+"/"); code != 200 || !strings.Contains(page, `<form id="subscribe" method="post" action="/subscribe">`) ||
		!strings.Contains(page, `name="outcome" value="FAILED"`) || !strings.Contains(page, "Webhooks are made with <code>taskotron notify subscribe --webhook</code> only") ||
		!strings.Contains(page, "unconfirmed subscriptions are forgotten after 2 days, and at most 5 wait per address") {
		t.Fatalf("page: %d\n%s", code, page)
	}
	code, page := r.form(url.Values{"email": {"dev@example.org"}, "item": {"python-*"}, "outcome": {"FAILED", "CRASHED"}})
	if code != 200 || !strings.Contains(page, "A confirmation link was mailed to dev@example.org") || errorOn(page) != "" {
		t.Fatalf("subscribe: %d %q\n%s", code, errorOn(page), page)
	}
	eventually(t, 10*time.Second, "the confirmation mail", func() bool { return len(r.mailsTo("dev@example.org")) == 1 })
	req := r.mailsTo("dev@example.org")[0]
	if req.Subject != "[taskotron] confirm your subscription: item python-*, outcome FAILED,CRASHED" {
		t.Errorf("confirmation subject %q", req.Subject)
	}
	link := confirmLink.FindString(req.Body)
	if !strings.HasPrefix(link, r.page+"/confirm?token=") {
		t.Fatalf("no confirmation link to the page in:\n%s", req.Body)
	}
	// Waiting for confirmation: not on the page, not matched.
	if s := r.subs(); len(s) != 1 || s[0].Target != "mailto:o…@example.org" {
		t.Errorf("page shows %+v", s)
	}
	if page := r.pageHTML(); strings.Contains(page, "dev@example.org") || !strings.Contains(page, "1 more wait for their address to confirm them") {
		t.Errorf("page shows the unconfirmed address, or does not count it:\n%s", page)
	}
	if list := r.cli("list"); !strings.Contains(list, "mailto:dev@example.org") || !strings.Contains(list, "unconfirmed (made on the page)") {
		t.Errorf("list:\n%s", list)
	}
	early := r.post("FAILED", "dist.rpmlint", "python-early-1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "the notifier took the result", func() bool { return r.events() >= 1 })

	// Opening the link (as a mail scanner does) shows the button and
	// confirms nothing; the button's POST confirms.
	if code, page := get(t, link); code != 200 || !strings.Contains(page, `<form id="confirm" method="post"`) {
		t.Fatalf("confirm page: %d\n%s", code, page)
	}
	if s := r.subs(); len(s) != 1 {
		t.Errorf("opening the confirmation link confirmed: %+v", s)
	}
	for range 2 { // a second click is no error
		code, page := press(t, link)
		if code != 200 || !strings.Contains(page, "Subscription confirmed") || !strings.Contains(page, "item python-*, outcome FAILED,CRASHED") {
			t.Fatalf("confirm: %d\n%s", code, page)
		}
	}
	if code, _ := press(t, r.page+"/confirm?token=forged"); code != 404 {
		t.Errorf("a forged token: %d", code)
	}
	if s := r.subs(); len(s) != 2 || s[1].Target != "mailto:d…@example.org" {
		t.Errorf("after confirming, page shows %+v", s)
	}
	// The page is public: it shows the address masked.
	if page := r.pageHTML(); strings.Contains(page, "dev@example.org") || !strings.Contains(page, "d…@example.org") {
		t.Errorf("page shows the address unmasked, or not at all:\n%s", page)
	}
	failed := r.post("FAILED", "dist.rpmlint", "python-foo-1-1.fc40", "x86_64", "")
	r.post("PASSED", "dist.rpmlint", "python-foo-1-1.fc40", "noarch", "")
	eventually(t, 30*time.Second, "a digest for dev@example.org", func() bool { return len(r.mailsTo("dev@example.org")) == 2 })
	var digest message
	for _, m := range r.mailsTo("dev@example.org") {
		if m.ID != req.ID {
			digest = m
		}
	}
	if ids := resultsIn(digest.Body); len(ids) != 1 || ids[0] != failed {
		t.Errorf("digest lists %v, want [%d] (not %d, from before the confirmation):\n%s", ids, failed, early, digest.Body)
	}
	m := unsubscribeLink.FindStringSubmatch(digest.Body)
	if m == nil {
		t.Fatalf("no unsubscribe link in the digest:\n%s", digest.Body)
	}
	stop := m[1]
	if h := digest.Header.Get("List-Unsubscribe"); h != "<"+stop+">" {
		t.Errorf("List-Unsubscribe %q, want <%s>", h, stop)
	}
	if h := digest.Header.Get("List-Unsubscribe-Post"); h != "" {
		t.Errorf("List-Unsubscribe-Post %q over http (one-click is for https links)", h)
	}
	// Opening the link asks; it stops nothing (mail scanners open links).
	if code, page := get(t, stop); code != 200 || !strings.Contains(page, "Stop these subscriptions?") || !strings.Contains(page, `<form id="unsubscribe" method="post"`) {
		t.Errorf("unsubscribe page: %d\n%s", code, page)
	}
	if s := r.subs(); len(s) != 2 {
		t.Errorf("a GET unsubscribed: %+v", s)
	}
	if code, page := oneClick(t, stop); code != 200 || !strings.Contains(page, "Unsubscribed") {
		t.Errorf("one-click unsubscribe: %d\n%s", code, page)
	}
	if code, _ := oneClick(t, stop); code != 404 {
		t.Errorf("the link again: %d", code)
	}
	if _, metrics := get(t, r.page+"/metrics"); !strings.Contains(metrics, "\ntaskotron_notify_confirmations_sent_total 1\n") || !strings.Contains(metrics, "\ntaskotron_notify_unsubscribed_total 1\n") {
		t.Errorf("/metrics:\n%s", metrics)
	}
	if s := r.subs(); len(s) != 1 || s[0].Target != "mailto:o…@example.org" {
		t.Errorf("after unsubscribing, page shows %+v", s)
	}
	r.post("FAILED", "dist.rpmlint", "python-late-1-1.fc40", "x86_64", "")
	sentinel := r.post("FAILED", "dist.rpmlint", "sentinel-1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "the sentinel mailed to other@example.org", func() bool {
		for _, m := range r.mailsTo("other@example.org") {
			if ids := resultsIn(m.Body); len(ids) == 1 && ids[0] == sentinel {
				return true
			}
		}
		return false
	})
	if n := len(r.mailsTo("dev@example.org")); n != 2 {
		t.Errorf("dev@example.org got %d messages after unsubscribing, want none more", n-2)
	}
}

// Bad input on the form is one line naming the field, the form kept as
// typed, nothing stored; an address gets at most five confirmation
// requests at a time; a request that cannot be mailed is not kept.
func TestSubscribePageRefusesBadInputAndCapsPending(t *testing.T) {
	r := newRig(t, rigOptions{public: "https://notify.example.org/"})
	r.start()
	// The mail server is down: nothing kept.
	code, page := r.form(url.Values{"email": {"dev@example.org"}})
	if code != 503 || errorOn(page) != "the confirmation mail could not be sent; try again later" {
		t.Errorf("with the mail server down: %d %q", code, errorOn(page))
	}
	r.startSMTP()
	for _, c := range []struct {
		form  url.Values
		field string
		want  string
	}{
		{url.Values{"item": {"python-*"}}, "email", "email: enter the address to mail"},
		{url.Values{"email": {"not an address"}}, "email", `email "not an address": not an address like someone@example.org`},
		{url.Values{"email": {"Dev <dev@example.org>"}}, "email", `email "Dev <dev@example.org>": not an address`},
		{url.Values{"email": {"dev@example.org"}, "testcase": {"dist.[rpmlint"}}, "testcase", `testcase "dist.[rpmlint": not a glob`},
		{url.Values{"email": {"dev@example.org"}, "item": {strings.Repeat("x", 1001)}}, "item", "item: a pattern of 1001 bytes, over 1000"},
		{url.Values{"email": {"dev@example.org"}, "origin": {"kernel[ci"}}, "origin", `origin "kernel[ci": not a glob`},
		{url.Values{"email": {"dev@example.org"}, "outcome": {"FAILED,PASSED"}}, "outcome", `outcome "FAILED,PASSED": want names like`},
		{url.Values{"email": {"dev@example.org"}, "webhook": {"https://hooks.example.org/"}}, "webhook", "webhook: webhooks are made with taskotron notify subscribe --webhook"},
	} {
		code, page := r.form(c.form)
		line := errorOn(page)
		if code != 400 || !strings.HasPrefix(line, c.want) || strings.Contains(line, "\n") {
			t.Errorf("%v: %d %q, want one line starting %q", c.form, code, line, c.want)
		}
		if c.field != "webhook" && c.field != "outcome" && !regexp.MustCompile(`name="`+c.field+`"[^>]*class="bad"`).MatchString(page) {
			t.Errorf("%v: the field %s is not marked", c.form, c.field)
		}
		if v := c.form.Get("testcase"); v != "" && !strings.Contains(page, `value="dist.[rpmlint"`) {
			t.Errorf("the form lost what was typed")
		}
	}
	for i := range 5 {
		if code, page := r.form(url.Values{"email": {"victim@example.org"}, "item": {"pkg" + strconv.Itoa(i) + "-*"}}); code != 200 {
			t.Fatalf("request %d: %d %q", i, code, errorOn(page))
		}
	}
	code, page = r.form(url.Values{"email": {"victim@example.org"}, "item": {"pkg5-*"}})
	if line := errorOn(page); code != 429 || line != `email "victim@example.org": 5 subscriptions already wait for confirmation; confirm them from their mails or wait until they expire: too many subscriptions wait for confirmation` {
		t.Errorf("a sixth request: %d %q", code, line)
	}
	if code, page := r.form(url.Values{"email": {"dev@example.org"}}); code != 200 {
		t.Errorf("another address: %d %q", code, errorOn(page))
	}
	// The mail server has each message before the form answers.
	if n := len(r.mailsTo("victim@example.org")); n != 5 {
		t.Errorf("victim@example.org got %d confirmation requests, want 5", n)
	}
	if n := len(r.mails()); n != 6 {
		t.Errorf("%d mails, want 6", n)
	}
	// The links point where notify.public_url says people reach the page.
	if link := confirmLink.FindString(r.mailsTo("dev@example.org")[0].Body); link != "" {
		t.Errorf("a link to the listening address %q, want notify.public_url", link)
	}
	if body := r.mailsTo("dev@example.org")[0].Body; !strings.Contains(body, "\n    https://notify.example.org/confirm?token=") || !strings.Contains(body, "asked at https://notify.example.org/ to mail") {
		t.Errorf("confirmation mail without notify.public_url's link:\n%s", body)
	}
	resp, err := http.Get(r.page + "/subscriptions.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"unconfirmed":6`) || !strings.Contains(string(raw), `"subscriptions":[]`) {
		t.Errorf("subscriptions.json: %s", raw)
	}
}
