package notify

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A body as resultsdb's publisher sends it (resultOut, reference §6.5).
const sampleEvent = `{"data":{"arch":["x86_64"],"item":["python-foo-1.0-1.fc40"],"type":["koji_build"]},"groups":["27f94e36-62ec-11e6-83fd-525400d7d6a4"],
"href":"https://resultsdb.example.org/api/v2.0/results/42","id":42,"note":"2 errors, 1 warning","outcome":"FAILED","ref_url":"https://taskotron.example.org/artifacts/27f9/rpmlint.log",
"submit_time":"2026-12-03T06:00:00.123456","testcase":{"href":"https://resultsdb.example.org/api/v2.0/testcases/dist.rpmlint","name":"dist.rpmlint","ref_url":null}}`

func TestParseEvent(t *testing.T) {
	r, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		t.Fatal(err)
	}
	want := Result{ID: 42, Item: "python-foo-1.0-1.fc40", Type: "koji_build", Arch: "x86_64", Testcase: "dist.rpmlint", Outcome: "FAILED",
		Note: "2 errors, 1 warning", Origin: DefaultOrigin, SubmitTime: "2026-12-03T06:00:00.123456",
		Href: "https://resultsdb.example.org/api/v2.0/results/42", Page: "https://resultsdb.example.org/results/42",
		RefURL: "https://taskotron.example.org/artifacts/27f9/rpmlint.log"}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	// The origin, once results carry one.
	withOrigin := strings.Replace(sampleEvent, `"id":42`, `"id":42,"origin":"kernelci"`, 1)
	if r, err := ParseEvent([]byte(withOrigin)); err != nil || r.Origin != "kernelci" {
		t.Errorf("origin: %v %q", err, r.Origin)
	}
	for _, c := range []struct{ body, want string }{
		{`[1]`, "not a result"},
		{`{"outcome":"FAILED","testcase":{"name":"x"}}`, "id: missing"},
		{`{"id":1,"testcase":{"name":"x"}}`, "outcome: missing"},
		{`{"id":1,"outcome":"FAILED"}`, "testcase.name: missing"},
		{`{"id":1,"outcome":"FAILED","testcase":{"name":"x"},"data":{"item":{"a":1}}}`, "data.item: want a list of strings"},
		{`{"id":1,"outcome":"FAILED","testcase":{"name":"x\u0000"}}`, "testcase.name: not valid text"},
	} {
		_, err := ParseEvent([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.body, err, c.want)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(sampleEvent))
	f.Add([]byte(`{"id":1,"outcome":"PASSED","testcase":{"name":"a/b"},"data":{"item":"x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseEvent(body)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of more than one line: %q", err)
			}
			return
		}
		if r.ID <= 0 || r.Outcome == "" || r.Testcase == "" || r.Origin == "" {
			t.Fatalf("accepted a result without id, outcome, testcase or origin: %+v", r)
		}
		// What is recorded reads back the same.
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Result
		if err := json.Unmarshal(raw, &back); err != nil || back != r {
			t.Fatalf("round trip: %v %+v != %+v", err, back, r)
		}
	})
}

func TestSubscriptionMatches(t *testing.T) {
	r := Result{ID: 1, Item: "python-foo-1.0-1.fc40", Testcase: "fedora-ci.koji-build./plans/basic.functional", Outcome: "FAILED", Origin: DefaultOrigin}
	for _, c := range []struct {
		sub  Subscription
		want bool
	}{
		{Subscription{Email: "a@example.org"}, true},
		{Subscription{Email: "a@example.org", Item: "python-*", Testcase: "fedora-ci.*"}, true}, // * crosses the /
		{Subscription{Email: "a@example.org", Item: "perl-*"}, false},
		{Subscription{Email: "a@example.org", Testcase: "dist.*"}, false},
		{Subscription{Email: "a@example.org", Outcomes: []string{"failed", "NEEDS_INSPECTION"}}, true},
		{Subscription{Email: "a@example.org", Outcomes: []string{"PASSED"}}, false},
		{Subscription{Email: "a@example.org", Origin: "taskotron"}, true},
		{Subscription{Email: "a@example.org", Origin: "kernelci"}, false},
		{Subscription{Email: "a@example.org", Item: "python-{foo,bar}-*"}, true},
		{Subscription{Email: "a@example.org", Item: "python-?oo-1.0-1.fc4[0-9]"}, true},
	} {
		if err := c.sub.Prepare(""); err != nil {
			t.Fatalf("%+v: %v", c.sub, err)
		}
		if got := c.sub.Matches(r); got != c.want {
			t.Errorf("%s: matches %v, want %v", c.sub.Filter(), got, c.want)
		}
	}
	for _, c := range []struct {
		sub    Subscription
		secret string
		want   string
	}{
		{Subscription{}, "", "one target"},
		{Subscription{Email: "a@example.org", Webhook: "https://x/"}, "", "one target"},
		{Subscription{Email: "Someone <a@example.org>"}, "", "not an address"},
		{Subscription{Webhook: "ftp://x/"}, "s", "want an http"},
		{Subscription{Webhook: "https://x/"}, "", "needs a secret"},
		{Subscription{Webhook: "https://u:p@x/"}, "s", "no credentials"},
		{Subscription{Email: "a@example.org", Item: "[a-"}, "", `item "[a-": not a glob`},
		{Subscription{Email: "a@example.org", Outcomes: []string{"FAILED", ""}}, "", `outcome ""`},
		{Subscription{Email: "a@example.org", Item: "python-*\r\nBcc: x@example.org"}, "", `item "python-*\r\nBcc: x@example.org": no control characters`},
	} {
		err := c.sub.Prepare(c.secret)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.sub, err, c.want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"delivery":"1-2"}`)
	sig := Sign("s3cret", body)
	// The value any HMAC-SHA256 gives (python3 -c 'import hmac,hashlib;
	// print(hmac.new(b"s3cret", b"{\"delivery\":\"1-2\"}", hashlib.sha256).hexdigest())').
	if sig != "sha256=0ebde9d5d36513b37d696059e140da286591b2420cf78e72b595de9a9d8b2263" {
		t.Errorf("signature %s", sig)
	}
	if !Verify("s3cret", body, sig) || Verify("other", body, sig) || Verify("s3cret", append(body, ' '), sig) {
		t.Error("Verify accepts a wrong secret or body, or refuses the right one")
	}
}

func TestComposeDigest(t *testing.T) {
	subs := map[int64]Subscription{3: {ID: 3, Email: "a@example.org", Item: "python-*", unsub: "tok3"}, 4: {ID: 4, Email: "a@example.org", Outcomes: []string{"FAILED"}, unsub: "tok4"}}
	prev := &Result{ID: 7, Item: "python-foo-0.9-1.fc40", Outcome: "PASSED"}
	ns := []Notification{
		{Sub: 3, Result: Result{ID: 10, Item: "python-foo-1.0-1.fc40", Testcase: "dist.depcheck", Outcome: "NEEDS_INSPECTION", Arch: "noarch", Origin: DefaultOrigin, Page: "http://r/results/10"}},
		{Sub: 3, Result: Result{ID: 11, Item: "python-foo-1.0-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Arch: "x86_64", Note: "2 errors\n1 warning", Origin: "kernelci", Page: "http://r/results/11"}, Previous: prev},
		{Sub: 4, Result: Result{ID: 11, Item: "python-foo-1.0-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Arch: "x86_64", Origin: "kernelci", Page: "http://r/results/11"}},
		{Sub: 3, Result: Result{ID: 12, Item: "python-bar-2-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Arch: "x86_64", Origin: DefaultOrigin, Page: "http://r/results/12"}},
	}
	m := compose("a@example.org", subs, ns, "d1", "https://notify.example.org/")
	if m.Subject != "[taskotron] python-foo-1.0-1.fc40 and 1 more: 2 FAILED, 1 NEEDS_INSPECTION" || m.ID != "d1@taskotron.notify" || m.To != "a@example.org" {
		t.Errorf("subject %q id %q to %q", m.Subject, m.ID, m.To)
	}
	if n := strings.Count(m.Body, "http://r/results/11"); n != 1 {
		t.Errorf("result 11 (two subscriptions) listed %d times:\n%s", n, m.Body)
	}
	for _, want := range []string{"3 new results", "FAILED  python-foo-1.0-1.fc40  dist.rpmlint  x86_64  (from kernelci)", "regression: PASSED on python-foo-0.9-1.fc40",
		"note: 2 errors 1 warning", "NEEDS_INSPECTION  python-foo-1.0-1.fc40  dist.depcheck  noarch", "#3 item python-*\n    stop it: https://notify.example.org/unsubscribe?t=tok3\n", "#4 outcome FAILED\n    stop it: https://notify.example.org/unsubscribe?t=tok4\n"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("digest lacks %q:\n%s", want, m.Body)
		}
	}
	// The header's one-click link stops both subscriptions of the digest.
	if m.Unsubscribe != "https://notify.example.org/unsubscribe?t=tok3&t=tok4" || !m.Bulk {
		t.Errorf("unsubscribe link %q, bulk %v", m.Unsubscribe, m.Bulk)
	}
	msg, err := message("taskotron@example.org", m)
	if err != nil {
		t.Fatal(err)
	}
	var raw strings.Builder
	if _, err := msg.WriteTo(&raw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"List-Unsubscribe: <https://notify.example.org/unsubscribe?t=tok3&t=tok4>\r\n", "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "Precedence: bulk\r\n"} {
		if !strings.Contains(raw.String(), want) {
			t.Errorf("message lacks the header %q:\n%s", want, raw.String())
		}
	}
	if strings.Index(m.Body, "dist.depcheck") < strings.Index(m.Body, "python-bar") {
		t.Errorf("FAILED results come first:\n%s", m.Body)
	}
}

func TestBackoffDoublesToTheCap(t *testing.T) {
	d := &deliverer{retryMin: 10e9, retryMax: 60e9}
	var got []string
	for f := 1; f <= 5; f++ {
		got = append(got, d.backoff(f).String())
	}
	if strings.Join(got, " ") != "10s 20s 40s 1m0s 1m0s" {
		t.Errorf("backoff: %v", got)
	}
}

// A receiver's redirect is not followed: the delivery failed, and the
// signed body went nowhere else.
func TestWebhookRedirectIsAFailure(t *testing.T) {
	elsewhere := 0
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere++ }))
	defer other.Close()
	hook := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer hook.Close()
	sub := Subscription{ID: 1, Webhook: hook.URL}
	if err := sub.Prepare("s"); err != nil {
		t.Fatal(err)
	}
	err := post(t.Context(), webhookClient(5*time.Second), sub, Notification{Sub: 1, Result: Result{ID: 2}}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "answered 307") || elsewhere != 0 {
		t.Errorf("redirect: %v (requests elsewhere: %d)", err, elsewhere)
	}
}

// Whatever a form or the command line sends, Prepare answers with one
// line naming a field, or takes a subscription whose description (in a
// mail's subject) is one line.
func FuzzPrepare(f *testing.F) {
	f.Add("a@example.org", "python-*", "dist.*", "kernelci", "FAILED,PASSED")
	f.Add("not an address", "[a-", "dist.\n", "", ",")
	f.Add("a@example.org", "{a,b", "?", "*", "failed")
	f.Fuzz(func(t *testing.T, email, item, testcase, origin, outcomes string) {
		sub := Subscription{Email: email, Item: item, Testcase: testcase, Origin: origin, Outcomes: SplitOutcomes(outcomes)}
		err := sub.Prepare("")
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Errorf("error %q names no field", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		if strings.ContainsAny(sub.Filter(), "\r\n") {
			t.Errorf("accepted a subscription described on several lines: %q", sub.Filter())
		}
	})
}
