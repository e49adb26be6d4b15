package notify

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/sqldb/sqldbtest"
)

// freshSchema is a new schema in the PostgreSQL test database, dropped
// when the test ends: the DSN that uses it.
func freshSchema(t testing.TB) string { return sqldbtest.FreshSchema(t, "notifytest") }

func eachStore(t *testing.T, fn func(t *testing.T, s *Store)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "notify.sqlite")
			if kind == "postgres" {
				dsn = freshSchema(t)
			}
			s, err := Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			fn(t, s)
		})
	}
}

func mustAdd(t *testing.T, s *Store, sub Subscription, secret string) Subscription {
	t.Helper()
	if err := sub.Prepare(secret); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(t.Context(), &sub); err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestStoreSubscriptionsAndOutbox(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		a := mustAdd(t, s, Subscription{Email: "a@example.org", Item: "python-*", Outcomes: []string{"FAILED"}}, "")
		a2 := mustAdd(t, s, Subscription{Email: "a@example.org", Testcase: "dist.*"}, "")
		hook := mustAdd(t, s, Subscription{Webhook: "https://hooks.example.org/t", Regressions: true}, "s3cret")
		subs, err := s.List(ctx)
		if err != nil || len(subs) != 3 || subs[0].ID != a.ID || subs[2].secret != "s3cret" || !subs[2].Regressions || subs[0].Outcomes[0] != "FAILED" {
			t.Fatalf("list: %v %+v", err, subs)
		}
		r := Result{ID: 5, Item: "python-foo-1-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Origin: DefaultOrigin}
		var match []Subscription
		for _, sub := range subs {
			if sub.Matches(r) {
				match = append(match, sub)
			}
		}
		if len(match) != 3 {
			t.Fatalf("matched %d subscriptions, want 3", len(match))
		}
		// The same event twice records its notifications once.
		for i, want := range []int{3, 0} {
			if n, err := s.Record(ctx, r, match); err != nil || n != want {
				t.Fatalf("record %d: %d %v, want %d new", i, n, err, want)
			}
		}
		// The webhook's waits on ResultsDB's word; then it is owed.
		checks, err := s.Checks(ctx, 10)
		if err != nil || len(checks) != 1 || checks[0].Sub != hook.ID || checks[0].Result != r {
			t.Fatalf("checks: %v %+v", err, checks)
		}
		prev := &Result{ID: 4, Item: "python-foo-0.9-1.fc40", Outcome: "PASSED", Testcase: "dist.rpmlint", Origin: DefaultOrigin}
		if err := s.Judge(ctx, checks[0].ID, prev); err != nil {
			t.Fatal(err)
		}
		// No digest before the window is over; then one for both of a's
		// subscriptions.
		now := time.Now()
		if n, err := s.FormDigests(ctx, time.Hour, now); err != nil || n != 0 {
			t.Fatalf("digest formed early: %d %v", n, err)
		}
		if n, err := s.FormDigests(ctx, time.Minute, now.Add(2*time.Minute)); err != nil || n != 1 {
			t.Fatalf("digests formed: %d %v", n, err)
		}
		due, err := s.Due(ctx, now)
		if err != nil || len(due) != 2 {
			t.Fatalf("due: %v %+v", err, due)
		}
		var digest string
		for _, d := range due {
			if d.Email == "a@example.org" {
				digest = d.Digest
			} else if d.Webhook != hook.ID {
				t.Errorf("due: %+v", d)
			}
		}
		ns, err := s.Digest(ctx, digest)
		if err != nil || len(ns) != 2 {
			t.Fatalf("digest: %v %+v", err, ns)
		}
		// A failing address backs off: not due until its retry.
		ids, _ := s.SubsOf(ctx, "a@example.org")
		if err := s.Failed(ctx, ids, 1, now.Add(time.Minute), "connection refused"); err != nil {
			t.Fatal(err)
		}
		// A result arriving meanwhile waits for the next digest: the one
		// that failed is sent as it was.
		r2 := Result{ID: 6, Item: "python-bar-1-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Origin: DefaultOrigin}
		if _, err := s.Record(ctx, r2, []Subscription{a}); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.FormDigests(ctx, 0, now.Add(time.Hour)); n != 0 {
			t.Errorf("a second digest formed while one waits")
		}
		due, _ = s.Due(ctx, now)
		if len(due) != 1 || due[0].Webhook != hook.ID {
			t.Errorf("due while backing off: %+v", due)
		}
		due, _ = s.Due(ctx, now.Add(2*time.Minute))
		if len(due) != 2 {
			t.Errorf("due after the retry time: %+v", due)
		}
		subs, _ = s.List(ctx)
		if subs[0].Failures != 1 || subs[0].NextRetry == nil || subs[0].LastError != "connection refused" || subs[0].Pending != 2 {
			t.Errorf("delivery state: %+v", subs[0])
		}
		if err := s.Delivered(ctx, []int64{ns[0].ID, ns[1].ID}, ids); err != nil {
			t.Fatal(err)
		}
		subs, _ = s.List(ctx)
		if subs[0].Failures != 0 || subs[0].NextRetry != nil || subs[0].LastDelivered == nil || subs[0].Pending != 1 {
			t.Errorf("after delivery: %+v", subs[0])
		}
		// Delivered notifications stay as dedup keys: the event again
		// records nothing.
		if n, _ := s.Record(ctx, r, match); n != 0 {
			t.Errorf("a delivered notification recorded again")
		}
		counts, err := s.Counts(ctx)
		if err != nil || counts[StateSent] != 2 || counts[StatePending] != 2 {
			t.Errorf("counts: %v %v", counts, err)
		}
		// Unsubscribing drops what the subscription was owed.
		if err := s.Remove(ctx, hook.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, hook.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("removing twice: %v", err)
		}
		if ns, _ := s.Pending(ctx, hook.ID, 10); len(ns) != 0 {
			t.Errorf("a removed subscription is still owed %d", len(ns))
		}
		if _, err := s.Get(ctx, a2.ID); err != nil {
			t.Error(err)
		}
	})
}

// A subscription made on the page matches nothing until its token
// confirms it; only the token's hash is stored; it expires and is pruned;
// an address has at most PerAddress waiting. Its unsubscribe token
// removes it and what it was owed.
func TestStorePendingConfirmUnsubscribe(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		lim := Limits{TTL: time.Hour, PerAddress: 2, Total: 3}
		pending := func(email string) (Subscription, string, error) {
			sub := Subscription{Email: email, Item: "python-*"}
			if err := sub.Prepare(""); err != nil {
				t.Fatal(err)
			}
			tok, err := s.AddPending(ctx, &sub, lim)
			return sub, tok, err
		}
		a, tokA, err := pending("a@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := pending("a@example.org"); err != nil {
			t.Fatal(err)
		}
		var fe *FieldError
		if _, _, err := pending("a@example.org"); !errors.Is(err, ErrTooManyPending) || !errors.As(err, &fe) || fe.Field != "email" {
			t.Errorf("a third for one address: %v", err)
		}
		if _, _, err := pending("b@example.org"); err != nil {
			t.Errorf("another address: %v", err)
		}
		if _, _, err := pending("c@example.org"); !errors.Is(err, ErrTooManyPending) || errors.As(err, &fe) {
			t.Errorf("over the total: %v", err)
		}
		var stored int
		if err := s.db.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM notify_subscriptions WHERE confirm_hash = ? OR confirm_hash = ?`), tokA, hashToken(tokA)).Scan(&stored); err != nil || stored != 1 {
			t.Fatalf("the token is stored as itself, or its hash is not: %d %v", stored, err)
		}
		match, _ := s.list(ctx, false)
		if len(match) != 0 {
			t.Errorf("unconfirmed subscriptions match: %+v", match)
		}
		if _, err := s.Confirm(ctx, "nope"); !errors.Is(err, ErrBadToken) {
			t.Errorf("a wrong token: %v", err)
		}
		for range 2 {
			got, err := s.Confirm(ctx, tokA)
			if err != nil || got.ID != a.ID || got.Confirmed == nil || got.Expires != nil {
				t.Fatalf("confirm: %+v %v", got, err)
			}
		}
		match, _ = s.list(ctx, false)
		if len(match) != 1 || match[0].ID != a.ID {
			t.Fatalf("after confirming, matching: %+v", match)
		}
		// The confirmed one left the address's allowance.
		if _, _, err := pending("a@example.org"); err != nil {
			t.Errorf("after confirming one: %v", err)
		}
		// Expired: not confirmable, pruned.
		if n, err := s.PruneUnconfirmed(ctx, time.Now()); err != nil || n != 0 {
			t.Errorf("pruned early: %d %v", n, err)
		}
		if n, err := s.PruneUnconfirmed(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 3 {
			t.Errorf("pruned %d, want the 3 unconfirmed: %v", n, err)
		}
		if all, _ := s.List(ctx); len(all) != 1 {
			t.Errorf("after pruning: %+v", all)
		}
		// The command line's are confirmed at once.
		cli := mustAdd(t, s, Subscription{Email: "a@example.org"}, "")
		if cli.Confirmed == nil || cli.unsub == "" {
			t.Errorf("command line's: %+v", cli)
		}
		r := Result{ID: 9, Item: "python-x-1-1.fc40", Testcase: "dist.rpmlint", Outcome: "FAILED", Origin: DefaultOrigin}
		if _, err := s.Record(ctx, r, []Subscription{a, cli}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if subs, err := s.ByUnsubscribe(ctx, []string{got.unsub, "unknown"}); err != nil || len(subs) != 1 || subs[0].ID != a.ID {
			t.Errorf("by unsubscribe token: %+v %v", subs, err)
		}
		for i, want := range []int{1, 0} {
			if gone, err := s.Unsubscribe(ctx, []string{got.unsub}); err != nil || len(gone) != want {
				t.Errorf("unsubscribe %d: %+v %v", i, gone, err)
			}
		}
		if ns, _ := s.Pending(ctx, a.ID, 10); len(ns) != 0 {
			t.Errorf("an unsubscribed subscription is still owed %d", len(ns))
		}
		if ns, _ := s.Pending(ctx, cli.ID, 10); len(ns) != 1 {
			t.Errorf("the other subscription lost what it is owed")
		}
	})
}

// Forms sent at once for one address pass its cap no more than one at a
// time; a token whose time ran out confirms nothing.
func TestStorePendingCapUnderConcurrencyAndExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		lim := Limits{TTL: time.Hour, PerAddress: 5, Total: 100}
		var wg sync.WaitGroup
		var ok, refused atomic.Int32
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sub := Subscription{Email: "victim@example.org", Item: fmt.Sprintf("pkg%d-*", i)}
				if err := sub.Prepare(""); err != nil {
					t.Error(err)
					return
				}
				_, err := s.AddPending(ctx, &sub, lim)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrTooManyPending):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 5 || refused.Load() != 7 {
			t.Errorf("%d stored, %d refused; want 5 and 7", ok.Load(), refused.Load())
		}
		sub := Subscription{Email: "late@example.org"}
		if err := sub.Prepare(""); err != nil {
			t.Fatal(err)
		}
		tok, err := s.AddPending(ctx, &sub, Limits{TTL: -time.Second, PerAddress: 5, Total: 100})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("an expired token: %v", err)
		}
		if got, _ := s.Get(ctx, sub.ID); got.Confirmed != nil {
			t.Errorf("an expired subscription confirmed: %+v", got)
		}
	})
}
