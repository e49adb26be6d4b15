package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gobwas/glob"
)

// Subscription is who wants to know about which results, and how they are
// told: by email (Email) or by a signed webhook (Webhook).
type Subscription struct {
	ID      int64  `json:"id"`
	Email   string `json:"email,omitempty"`
	Webhook string `json:"webhook,omitempty"`
	// Item and Testcase are globs (* any run of characters, / included;
	// ? one character; [a-z], {a,b}); empty matches everything.
	Item     string `json:"item,omitempty"`
	Testcase string `json:"testcase,omitempty"`
	// Outcomes, when any, are the outcomes that match.
	Outcomes []string `json:"outcomes,omitempty"`
	// Origin, when set, is the one origin (a glob) whose results match.
	Origin string `json:"origin,omitempty"`
	// Regressions: only results worse than the same testcase and arch on
	// the previous build of the same package.
	Regressions bool      `json:"regressions,omitempty"`
	Created     time.Time `json:"created"`
	// Confirmed is when the address owner confirmed a subscription made on
	// the page (at once for the command line's); until then it matches
	// nothing, and it is gone at Expires.
	Confirmed *time.Time `json:"confirmed,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`

	// Delivery state, kept by the store.
	Failures      int        `json:"failures"`
	NextRetry     *time.Time `json:"next_retry,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastDelivered *time.Time `json:"last_delivered,omitempty"`
	Pending       int        `json:"pending"`

	// secret signs the webhook's requests; never shown.
	secret string
	// unsub is the token of the subscription's unsubscribe link.
	unsub  string
	item   glob.Glob
	test   glob.Glob
	origin glob.Glob
}

// Target says where a subscription's notifications go, for people.
func (s Subscription) Target() string {
	if s.Email != "" {
		return "mailto:" + s.Email
	}
	return s.Webhook
}

// Filter says which results a subscription takes, for people.
func (s Subscription) Filter() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("item", s.Item)
	add("testcase", s.Testcase)
	add("outcome", strings.Join(s.Outcomes, ","))
	add("origin", s.Origin)
	if s.Regressions {
		parts = append(parts, "regressions only")
	}
	if len(parts) == 0 {
		return "every result"
	}
	return strings.Join(parts, ", ")
}

// FieldError is a subscription refused for one of its fields: Field is
// the field's name (email, webhook, item, testcase, outcome, origin), as
// the page's form and the command line's flags call it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// SplitOutcomes reads a comma-separated list of outcomes (the command
// line's --outcome); Prepare checks them.
func SplitOutcomes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// maxPattern caps a glob or a target: a subscription is typed by a person.
const maxPattern = 1000

// Prepare checks a subscription someone asked for and compiles its globs;
// the error names the field. secret is the webhook's signing secret.
func (s *Subscription) Prepare(secret string) error {
	if (s.Email == "") == (s.Webhook == "") {
		return &FieldError{Field: "email", Err: errors.New("a subscription needs one target: --email ADDRESS or --webhook URL")}
	}
	if s.Email != "" {
		a, err := mail.ParseAddress(s.Email)
		if err != nil || len(s.Email) > 254 || a.Name != "" || a.Address != s.Email {
			return fieldErr("email", "email %q: not an address like someone@example.org", s.Email)
		}
	}
	if s.Webhook != "" {
		u, err := url.Parse(s.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fieldErr("webhook", "webhook %q: want an http:// or https:// URL", s.Webhook)
		}
		if u.User != nil {
			return fieldErr("webhook", "webhook: put no credentials in the URL; requests are signed with --secret-file")
		}
		if secret == "" {
			return fieldErr("webhook", "webhook: needs a secret to sign its requests (--secret-file FILE)")
		}
	}
	s.secret = secret
	for i, o := range s.Outcomes {
		o = strings.ToUpper(strings.TrimSpace(o))
		if o == "" || strings.ContainsFunc(o, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return fieldErr("outcome", "outcome %q: want names like FAILED,NEEDS_INSPECTION", s.Outcomes[i])
		}
		s.Outcomes[i] = o
	}
	return s.compile()
}

// compile makes the globs of a subscription read from the store, or checks
// them when it is new.
func (s *Subscription) compile() error {
	for _, f := range []struct {
		name, pattern string
		dst           *glob.Glob
	}{{"item", s.Item, &s.item}, {"testcase", s.Testcase, &s.test}, {"origin", s.Origin, &s.origin}} {
		if f.pattern == "" {
			*f.dst = nil
			continue
		}
		if strings.ContainsFunc(f.pattern, unicode.IsControl) {
			return fieldErr(f.name, "%s %q: no control characters (line breaks, tabs) in a pattern", f.name, f.pattern)
		}
		if len(f.pattern) > maxPattern {
			return fieldErr(f.name, "%s: a pattern of %d bytes, over %d", f.name, len(f.pattern), maxPattern)
		}
		g, err := glob.Compile(f.pattern)
		if err != nil {
			return fieldErr(f.name, "%s %q: not a glob: %v", f.name, f.pattern, err)
		}
		*f.dst = g
	}
	return nil
}

// Matches reports whether a result is one the subscription takes (a
// regressions-only subscription still needs ResultsDB's word).
func (s *Subscription) Matches(r Result) bool {
	if s.item != nil && !s.item.Match(r.Item) {
		return false
	}
	if s.test != nil && !s.test.Match(r.Testcase) {
		return false
	}
	if s.origin != nil && !s.origin.Match(r.Origin) {
		return false
	}
	return len(s.Outcomes) == 0 || slices.Contains(s.Outcomes, r.Outcome)
}
