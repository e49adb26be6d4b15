package notify_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/notify"
)

var resultLine = regexp.MustCompile(`/results/(\d+)\n`)

// resultsIn lists the result ids a digest links to.
func resultsIn(body string) []int64 {
	var ids []int64
	for _, m := range resultLine.FindAllStringSubmatch(body, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

// A packager subscribes to failures of python packages' dist.* checks; a
// burst of results becomes one message listing the matching ones with
// their links, and someone else's subscription gets nothing of it.
func TestEmailDigestOverSMTP(t *testing.T) {
	r := newRig(t, rigOptions{window: "1500ms"})
	r.startSMTP()
	out := r.cli("subscribe", "--email", "packager@example.org", "--item", "python-*", "--testcase", "dist.*", "--outcome", "FAILED,NEEDS_INSPECTION")
	if !strings.HasPrefix(out, "subscription 1: item python-*, testcase dist.*, outcome FAILED,NEEDS_INSPECTION → mailto:packager@example.org") {
		t.Errorf("subscribe said %q", out)
	}
	r.cli("subscribe", "--email", "kernel@example.org", "--item", "kernel-*")
	if list := r.cli("list"); !strings.Contains(list, "mailto:packager@example.org") || !strings.Contains(list, "mailto:kernel@example.org") {
		t.Errorf("list:\n%s", list)
	}
	r.start()
	// Messages no result can be read from are set aside; the notifier
	// goes on.
	publish(t, r.exchange, []byte("not json"))
	publish(t, r.exchange, []byte(`{"id": -1, "outcome": "FAILED", "testcase": {"name": "dist.rpmlint"}}`))

	failed := r.post("FAILED", "dist.rpmlint", "python-foo-1.0-1.fc40", "x86_64", "2 errors, 1 warning")
	inspect := r.post("NEEDS_INSPECTION", "dist.depcheck", "python-bar-2.0-1.fc40", "noarch", "")
	r.post("PASSED", "dist.rpmlint", "python-baz-1-1.fc40", "x86_64", "")      // outcome
	r.post("FAILED", "dist.rpmlint", "perl-Foo-1-1.fc40", "x86_64", "")        // item
	r.post("FAILED", "fedora-ci.tier0", "python-foo-1.0-1.fc40", "x86_64", "") // testcase

	eventually(t, 30*time.Second, "a digest reaches packager@example.org", func() bool { return len(r.mails()) > 0 })
	mails := r.mails()
	if len(mails) != 1 {
		t.Fatalf("%d messages, want one digest: %+v", len(mails), mails)
	}
	m := mails[0]
	if m.To != "<packager@example.org>" && m.To != "packager@example.org" {
		t.Errorf("to %q", m.To)
	}
	if m.Subject != "[taskotron] python-foo-1.0-1.fc40 and 1 more: 1 FAILED, 1 NEEDS_INSPECTION" {
		t.Errorf("subject %q", m.Subject)
	}
	for _, want := range []string{
		"2 new results matched your subscriptions",
		"FAILED  python-foo-1.0-1.fc40  dist.rpmlint  x86_64\n    note: 2 errors, 1 warning\n    " + resultLink(r, failed) + "\n",
		"NEEDS_INSPECTION  python-bar-2.0-1.fc40  dist.depcheck  noarch\n    " + resultLink(r, inspect) + "\n",
		"#1 item python-*, testcase dist.*, outcome FAILED,NEEDS_INSPECTION\n    stop it: " + r.page + "/unsubscribe?t=",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("digest lacks %q:\n%s", want, m.Body)
		}
	}
	if got := resultsIn(m.Body); len(got) != 2 {
		t.Errorf("digest lists results %v, want %d and %d only:\n%s", got, failed, inspect, m.Body)
	}
	// The link is the result's page.
	resp, err := http.Get(resultLink(r, failed))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("result page %s: %v %v", resultLink(r, failed), err, resp)
	} else {
		resp.Body.Close()
	}

	// The next burst is the next message, holding only what is new.
	later := r.post("FAILED", "dist.rpmdeplint", "python-foo-1.0-2.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "a second digest", func() bool { return len(r.mails()) == 2 })
	for _, m := range r.mails() {
		if ids := resultsIn(m.Body); len(ids) == 1 && ids[0] != later {
			t.Errorf("second digest lists %v, want [%d]", ids, later)
		}
	}
	// The mail lands before the notifier records it sent: the page
	// catches up.
	eventually(t, 10*time.Second, "the page shows the digest delivered and nothing waiting", func() bool {
		s := r.subs()
		return s[0].LastDelivered != nil && s[0].Failures == 0 && s[0].Pending == 0 && s[1].LastDelivered == nil
	})
	if page := r.pageHTML(); !strings.Contains(page, "mailto:p…@example.org") || !strings.Contains(page, "item python-*, testcase dist.*") {
		t.Errorf("page:\n%s", page)
	}
	resp, err = http.Get(r.page + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"taskotron_notify_events_malformed_total 2", "taskotron_notify_digests_sent_total 2", `taskotron_notify_notifications{state="sent"} 3`} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if out := r.cli("unsubscribe", "2"); out != "subscription 2 removed\n" {
		t.Errorf("unsubscribe said %q", out)
	}
}

// The notifier is SIGKILLed while results stream in, and the mail server
// is down: once it is back, every matching result is in exactly one
// message; an event the broker delivers twice repeats nothing. On
// PostgreSQL, as in production.
func TestKilledNotifierAndSMTPOutageLoseAndRepeatNothing(t *testing.T) {
	r := newRig(t, rigOptions{postgres: true, window: "1s"})
	r.cli("subscribe", "--email", "packager@example.org", "--item", "python-*", "--outcome", "FAILED")
	r.start()

	var want []int64
	for round := range 3 {
		var release func()
		if round == 1 {
			// This time surely with messages taken and not recorded.
			release = stallRecording(t, r.db)
		}
		for i := range 8 {
			item := fmt.Sprintf("python-pkg%d-1.%d-1.fc40", i, round)
			want = append(want, r.post("FAILED", "dist.rpmlint", item, "x86_64", ""))
			r.post("PASSED", "dist.rpmlint", item, "noarch", "")
		}
		if release != nil {
			eventually(t, 30*time.Second, "the notifier holds a message it cannot record yet", func() bool { return recordingStalled(t, r.db) })
		}
		// Killed at once, mid-stream: what it took and had not recorded
		// is not acked, and the broker hands it to the next run.
		r.kill()
		if release != nil {
			release()
		}
		r.start()
	}
	// The mail server is down: the digest fails, backs off, and the page
	// says so.
	eventually(t, 30*time.Second, "the page shows the failing address with its next retry", func() bool {
		s := r.subs()
		return len(s) == 1 && s[0].Failures >= 2 && s[0].NextRetry != nil && strings.Contains(s[0].LastError, "127.0.0.1")
	})
	if page := r.pageHTML(); !strings.Contains(page, "Failing deliveries") || !strings.Contains(page, "mailto:p…@example.org") {
		t.Errorf("page does not show the failing delivery:\n%s", page)
	}
	// One more kill while it backs off, then a result delivered twice by
	// the broker (as an at-least-once publisher may).
	r.kill()
	dup := r.post("FAILED", "dist.rpmlint", "python-dup-1-1.fc40", "x86_64", "")
	want = append(want, dup)
	r.start()
	r.startSMTP()

	eventually(t, 60*time.Second, fmt.Sprintf("every one of the %d results mailed", len(want)), func() bool {
		seen := map[int64]bool{}
		for _, m := range r.mails() {
			for _, id := range resultsIn(m.Body) {
				seen[id] = true
			}
		}
		for _, id := range want {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	republish(t, r, dup)
	sentinel := r.post("FAILED", "dist.rpmlint", "python-sentinel-1-1.fc40", "x86_64", "")
	want = append(want, sentinel)
	eventually(t, 30*time.Second, "the sentinel mailed", func() bool {
		for _, m := range r.mails() {
			for _, id := range resultsIn(m.Body) {
				if id == sentinel {
					return true
				}
			}
		}
		return false
	})
	// Each result in exactly one message (a message sent again after a
	// crash would carry the same Message-ID, and counts once).
	byID := map[string]message{}
	for _, m := range r.mails() {
		byID[m.ID] = m
	}
	count := map[int64]int{}
	for _, m := range byID {
		for _, id := range resultsIn(m.Body) {
			count[id]++
		}
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("result %d is in %d messages, want 1", id, count[id])
		}
	}
	if len(count) != len(want) {
		t.Errorf("%d results mailed, want %d (no PASSED ones)", len(count), len(want))
	}
	// The page catches up once the notifier has recorded the last send.
	eventually(t, 10*time.Second, "the page shows nothing waiting and no failure", func() bool {
		s := r.subs()
		return s[0].Failures == 0 && s[0].Pending == 0 && s[0].LastDelivered != nil
	})
	t.Logf("%d results in %d messages over %d notifier starts", len(want), len(byID), r.starts)
}

// The one repeat at-least-once allows: the notifier dies after the mail
// server took a digest and before it recorded so. The digest goes again
// under the same Message-ID, so that it is one message to mail clients,
// and holds the same results.
func TestDigestResentAfterACrashKeepsItsMessageID(t *testing.T) {
	r := newRig(t, rigOptions{postgres: true, window: "300ms"})
	r.cli("subscribe", "--email", "packager@example.org")
	r.start()
	// The mail server is down: the digest is formed and fails.
	ids := []int64{r.post("FAILED", "dist.rpmlint", "python-a-1-1.fc40", "x86_64", ""), r.post("FAILED", "dist.rpmlint", "python-b-1-1.fc40", "x86_64", "")}
	eventually(t, 30*time.Second, "the digest fails", func() bool { s := r.subs(); return len(s) == 1 && s[0].Failures >= 1 && s[0].Pending == 2 })
	// Marking it sent will wait on this lock.
	release := stallRecording(t, r.db)
	r.startSMTP()
	eventually(t, 30*time.Second, "the mail server takes the digest and the notifier waits to record it", func() bool {
		return len(r.mails()) == 1 && waitsOnLock(t, r.db, "UPDATE notify_outbox%")
	})
	r.kill()
	release()
	r.start()
	eventually(t, 30*time.Second, "the digest is sent again and recorded", func() bool {
		s := r.subs()
		return len(r.mails()) == 2 && s[0].Pending == 0 && s[0].Failures == 0
	})
	mails := r.mails()
	if mails[0].ID == "" || mails[0].ID != mails[1].ID || mails[0].Body != mails[1].Body {
		t.Errorf("the digest sent again differs: %q %q\n%s\n%s", mails[0].ID, mails[1].ID, mails[0].Body, mails[1].Body)
	}
	if got := resultsIn(mails[0].Body); len(got) != 2 || got[0] != ids[0] && got[1] != ids[0] {
		t.Errorf("digest lists %v, want %v", got, ids)
	}
}

// republish sends a result's message again, as the outbox publisher does
// when it dies between the broker's confirm and its bookkeeping.
func republish(t *testing.T, r *rig, id int64) {
	t.Helper()
	resp, err := http.Get(r.results + "/api/v2.0/results/" + strconv.FormatInt(id, 10))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	publish(t, r.exchange, body)
}

type received struct {
	delivery string
	body     notify.WebhookBody
}

// receiver is a webhook endpoint that checks every request's signature
// and can be told to fail.
type receiver struct {
	t      *testing.T
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	fail   bool
	got    []received
	failed []string // delivery ids answered 503
	bad    []string
}

func newReceiver(t *testing.T, secret string, failing bool) *receiver {
	rc := &receiver{t: t, secret: secret, fail: failing}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	d := r.Header.Get(notify.HeaderDelivery)
	var b notify.WebhookBody
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
		rc.bad = append(rc.bad, "method or type: "+r.Method+" "+r.Header.Get("Content-Type"))
	case !notify.Verify(rc.secret, body, r.Header.Get(notify.HeaderSignature)):
		rc.bad = append(rc.bad, "signature "+r.Header.Get(notify.HeaderSignature))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	case json.Unmarshal(body, &b) != nil || b.Delivery != d || r.Header.Get(notify.HeaderTimestamp) == "":
		rc.bad = append(rc.bad, "body or headers: "+string(body))
	}
	if ts, err := strconv.ParseInt(r.Header.Get(notify.HeaderTimestamp), 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		rc.bad = append(rc.bad, "timestamp "+r.Header.Get(notify.HeaderTimestamp))
	}
	if rc.fail {
		rc.failed = append(rc.failed, d)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	rc.got = append(rc.got, received{delivery: d, body: b})
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() (got []received, failed, bad []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...), append([]string(nil), rc.failed...), append([]string(nil), rc.bad...)
}

// Two webhooks: one answers 503 and backs off, shown on the page with its
// next retry, while the other gets every result at once; once the first
// recovers it gets them all too, under the same delivery ids.
func TestWebhooksSignedAndAFailingOneBlocksNoOne(t *testing.T) {
	r := newRig(t, rigOptions{})
	good := newReceiver(t, "good-secret", false)
	down := newReceiver(t, "other secret", true)
	for _, s := range []struct{ name, secret, url string }{{"good", "good-secret", good.srv.URL + "/hook"}, {"down", "other secret", down.srv.URL + "/hook"}} {
		f := filepath.Join(r.dir, s.name+".secret")
		if err := os.WriteFile(f, []byte(s.secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cli("subscribe", "--webhook", s.url, "--secret-file", f, "--item", "python-*")
	}
	r.start()
	var ids []int64
	for i := range 5 {
		ids = append(ids, r.post("FAILED", "dist.rpmlint", fmt.Sprintf("python-w%d-1-1.fc40", i), "x86_64", "note "+strconv.Itoa(i)))
	}
	r.post("FAILED", "dist.rpmlint", "perl-X-1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "the good webhook gets the 5 results", func() bool { got, _, _ := good.snapshot(); return len(got) >= 5 })
	eventually(t, 30*time.Second, "the failing webhook shows on the page, backing off", func() bool {
		s := r.subs()
		return s[1].Failures >= 3 && s[1].NextRetry != nil && strings.Contains(s[1].LastError, "503") && s[1].Pending == 5
	})
	if page := r.pageHTML(); !strings.Contains(page, "Failing deliveries") || !strings.Contains(page, down.srv.URL+"/hook") || !strings.Contains(page, "503 Service Unavailable") {
		t.Errorf("page does not show the failing webhook:\n%s", page)
	}
	eventually(t, 10*time.Second, "the good webhook shows delivered, nothing waiting", func() bool {
		s := r.subs()
		return s[0].Failures == 0 && s[0].Pending == 0 && s[0].LastDelivered != nil
	})
	down.mu.Lock()
	down.fail = false
	down.mu.Unlock()
	eventually(t, 30*time.Second, "the recovered webhook gets the 5 results", func() bool { got, _, _ := down.snapshot(); return len(got) >= 5 })

	for i, rc := range []*receiver{good, down} {
		got, failed, bad := rc.snapshot()
		if len(bad) > 0 {
			t.Errorf("receiver %d saw bad requests: %v", i, bad)
		}
		if len(got) != 5 {
			t.Errorf("receiver %d got %d deliveries, want 5 (no repeats)", i, len(got))
		}
		for j, g := range got {
			sub := int64(i + 1)
			if g.delivery != fmt.Sprintf("%d-%d", sub, ids[j]) || g.body.Subscription != sub || g.body.Result.ID != ids[j] ||
				g.body.Result.Outcome != "FAILED" || g.body.Result.Item != fmt.Sprintf("python-w%d-1-1.fc40", j) || g.body.Result.Note != "note "+strconv.Itoa(j) ||
				g.body.Result.Page != resultLink(r, ids[j]) || g.body.Result.Origin != "taskotron" || g.body.Regression {
				t.Errorf("receiver %d delivery %d: %s %+v", i, j, g.delivery, g.body)
			}
		}
		if i == 1 {
			// Retries repeat the first delivery's id, in order.
			for _, f := range failed {
				if f != got[0].delivery {
					t.Errorf("a failed attempt carried %s, want only %s (the head of its queue)", f, got[0].delivery)
				}
			}
		}
	}
}

// A regressions-only subscription hears of a result only when ResultsDB
// says it is worse than the same testcase and arch on the package's
// previous build.
func TestRegressionsOnly(t *testing.T) {
	r := newRig(t, rigOptions{window: "500ms"})
	hook := newReceiver(t, "s", false)
	f := filepath.Join(r.dir, "secret")
	os.WriteFile(f, []byte("s"), 0o600)
	r.cli("subscribe", "--webhook", hook.srv.URL, "--secret-file", f, "--item", "foo-*", "--regressions")
	r.startSMTP()
	r.cli("subscribe", "--email", "qa@example.org", "--regressions")
	r.start()

	before := r.post("PASSED", "dist.rpmlint", "foo-1.0-1.fc40", "x86_64", "")
	r.post("FAILED", "dist.abicheck", "foo-1.0-1.fc40", "x86_64", "")
	r.post("PASSED", "dist.depcheck", "foo-1.0-1.fc40", "x86_64", "")
	regressed := r.post("FAILED", "dist.rpmlint", "foo-1.1-1.fc40", "x86_64", "") // PASSED before: a regression
	r.post("FAILED", "dist.abicheck", "foo-1.1-1.fc40", "x86_64", "")             // FAILED before too
	r.post("FAILED", "dist.rpmlint", "foo-1.1-1.fc40", "noarch", "")              // no noarch result before
	r.post("PASSED", "dist.depcheck", "foo-1.1-1.fc40", "x86_64", "")             // not worse
	r.post("FAILED", "dist.rpmlint", "bar-1.1-1.fc40", "x86_64", "")              // a first build
	// The sentinel: a regression posted last.
	r.post("PASSED", "dist.depcheck", "foo-1.1-2.fc40", "x86_64", "")
	last := r.post("NEEDS_INSPECTION", "dist.depcheck", "foo-1.1-3.fc40", "x86_64", "")

	eventually(t, 30*time.Second, "both regressions reach the webhook", func() bool { got, _, _ := hook.snapshot(); return len(got) >= 2 })
	got, _, bad := hook.snapshot()
	if len(bad) > 0 || len(got) != 2 {
		t.Fatalf("webhook got %d (bad %v): %+v", len(got), bad, got)
	}
	byID := map[int64]notify.WebhookBody{}
	for _, g := range got {
		byID[g.body.Result.ID] = g.body
	}
	if b := byID[regressed]; !b.Regression || b.Previous == nil || b.Previous.ID != before || b.Previous.Outcome != "PASSED" || b.Previous.Item != "foo-1.0-1.fc40" {
		t.Errorf("regression %d: %+v", regressed, b)
	}
	if b := byID[last]; !b.Regression || b.Previous == nil || b.Previous.Item != "foo-1.1-2.fc40" {
		t.Errorf("regression %d: %+v", last, b)
	}
	eventually(t, 30*time.Second, "the regressions digest", func() bool {
		n := 0
		for _, m := range r.mails() {
			n += len(resultsIn(m.Body))
		}
		return n >= 2
	})
	var all []int64
	for _, m := range r.mails() {
		all = append(all, resultsIn(m.Body)...)
		if strings.Contains(m.Body, resultLink(r, regressed)) && !strings.Contains(m.Body, "regression: PASSED on foo-1.0-1.fc40") {
			t.Errorf("digest does not say what it regressed from:\n%s", m.Body)
		}
	}
	if len(all) != 2 {
		t.Errorf("digests list %v, want %d and %d", all, regressed, last)
	}
}

// Results from many CI systems reach one ResultsDB: a subscription to one
// origin gets that system's results only, told apart by the origin the
// events carry.
func TestSubscriptionToOneOrigin(t *testing.T) {
	r := newRig(t, rigOptions{window: "1s"})
	r.startSMTP()
	r.cli("subscribe", "--email", "kernel@example.org", "--origin", "ci_kernel", "--outcome", "FAILED")
	r.cli("subscribe", "--email", "fedora@example.org", "--origin", "taskotron", "--outcome", "FAILED")
	_, token, err := r.tokens.AddToken(t.Context(), "ci_kernel")
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	theirs := r.postAs(token, "FAILED", "ltp.sem01", "kernel-6.1-1.fc40", "x86_64", "")
	ours := r.post("FAILED", "dist.rpmlint", "kernel-6.1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "a digest to each address", func() bool {
		return len(r.mailsTo("kernel@example.org")) == 1 && len(r.mailsTo("fedora@example.org")) == 1
	})
	if ids := resultsIn(r.mailsTo("kernel@example.org")[0].Body); len(ids) != 1 || ids[0] != theirs {
		t.Errorf("ci_kernel's subscriber got results %v, want [%d]", ids, theirs)
	}
	if ids := resultsIn(r.mailsTo("fedora@example.org")[0].Body); len(ids) != 1 || ids[0] != ours {
		t.Errorf("taskotron's subscriber got results %v, want [%d]", ids, ours)
	}
}

// A receiver that answers 410 Gone is gone for good: its subscription
// ends, with nothing more sent to it, while the others go on.
func TestWebhookGoneEndsItsSubscription(t *testing.T) {
	r := newRig(t, rigOptions{})
	var calls atomic.Int32
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	good := newReceiver(t, "good-secret", false)
	for _, s := range []struct{ name, url string }{{"gone", gone.URL + "/hook"}, {"good", good.srv.URL + "/hook"}} {
		f := filepath.Join(r.dir, s.name+".secret")
		if err := os.WriteFile(f, []byte("good-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cli("subscribe", "--webhook", s.url, "--secret-file", f, "--item", "python-*")
	}
	r.start()
	r.post("FAILED", "dist.rpmlint", "python-g1-1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "the gone webhook's subscription ends", func() bool { return len(r.subs()) == 1 })
	if s := r.subs(); !strings.HasPrefix(s[0].Target, good.srv.URL) {
		t.Errorf("left: %+v", s)
	}
	r.post("FAILED", "dist.rpmlint", "python-g2-1-1.fc40", "x86_64", "")
	eventually(t, 30*time.Second, "the other webhook gets both results", func() bool { got, _, _ := good.snapshot(); return len(got) >= 2 })
	if n := calls.Load(); n != 1 {
		t.Errorf("the gone receiver was called %d times, want once", n)
	}
}
