package labs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/sqldb/sqldbtest"
)

// openTestStore opens a fresh store: a new SQLite file, or a new schema in
// the PostgreSQL test database, dropped afterwards.
func openTestStore(t testing.TB, kind string) *Store {
	t.Helper()
	ctx := context.Background()
	if kind == "sqlite" {
		s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "labs.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, err := Open(ctx, sqldbtest.FreshSchema(t, "labstest"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func bothStores(t *testing.T, fn func(t *testing.T, s *Store)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { fn(t, openTestStore(t, kind)) })
	}
}

func req(id string, prio int, where Labels) Request {
	return Request{ID: id, TaskName: "boot", Item: "kernel-6.1-1.fc40", ItemType: "koji_build", Priority: prio, Where: where}
}

// TestLeaseOrderAndLabels: a board gets the oldest of the highest-priority
// requests whose where: it satisfies, never one it does not.
func TestLeaseOrderAndLabels(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		base := time.Now().Add(-time.Hour)
		var reqs []Request
		for i, r := range []Request{
			req("a9-old", 0, Labels{"cpu": "cortex-a9"}),
			req("bbb-high", 5, Labels{"board": "beaglebone-black"}),
			req("a9-high", 5, Labels{"cpu": "cortex-a9"}),
			req("a9-high-later", 5, Labels{"cpu": "cortex-a9"}),
			req("x86", 9, Labels{"arch": "x86_64"}),
			req("any", 1, nil),
			req("lab-b-only", 9, Labels{"lab": "lab-b"}),
		} {
			r.Created = base.Add(time.Duration(i) * time.Second)
			reqs = append(reqs, r)
		}
		if _, err := s.Put(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		if again, err := s.Put(ctx, reqs[:2]); err != nil || len(again) != 0 {
			t.Fatalf("a resent put queued %d (err %v), want none", len(again), err)
		}
		board := Board{Name: "bbb-1", Lab: "lab-a", Labels: Labels{"cpu": "cortex-a9", "board": "beaglebone-black", "arch": "armv7hl"}}
		var got []string
		for {
			l, err := s.Lease(ctx, board, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if l == nil {
				break
			}
			if l.Attempt != 1 || l.Request.State != StateRunning || l.Request.Lab != "lab-a" {
				t.Errorf("lease %+v", l)
			}
			got = append(got, l.Request.ID)
		}
		// Priority first, then age; x86 and lab-b's are not for this board.
		if want := "bbb-high a9-high a9-high-later any a9-old"; strings.Join(got, " ") != want {
			t.Errorf("leased %q, want %q", strings.Join(got, " "), want)
		}
		l, err := s.Lease(ctx, Board{Name: "b1", Lab: "lab-b"}, time.Minute)
		if err != nil || l == nil || l.Request.ID != "lab-b-only" {
			t.Errorf("lab-b got %+v, %v; want lab-b-only (lab=<name> is every lab's label)", l, err)
		}
	})
}

// TestNoRequestToTwoBoards: boards leasing at once never share a request.
func TestNoRequestToTwoBoards(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const n = 60
		var reqs []Request
		for i := range n {
			reqs = append(reqs, req(fmt.Sprintf("r%03d", i), i%3, Labels{"cpu": "cortex-a9"}))
		}
		if _, err := s.Put(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		for b := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				board := Board{Name: fmt.Sprintf("board-%d", b), Lab: "lab", Labels: Labels{"cpu": "cortex-a9"}}
				for {
					l, err := s.Lease(ctx, board, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if l == nil {
						return
					}
					mu.Lock()
					if other, dup := seen[l.Request.ID]; dup {
						t.Errorf("request %s leased to %s and %s", l.Request.ID, other, board.Name)
					}
					seen[l.Request.ID] = board.Name
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("%d requests leased, want %d", len(seen), n)
		}
	})
}

// TestLeaseLifecycle: only the holder renews and reports; an expired lease
// is taken back and can no longer report; a requeued request keeps its
// attempt count.
func TestLeaseLifecycle(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.Put(ctx, []Request{req("r1", 0, nil)})
		a := Board{Name: "a1", Lab: "lab-a"}
		l, err := s.Lease(ctx, a, 300*time.Millisecond)
		if err != nil || l == nil {
			t.Fatalf("lease: %v %v", l, err)
		}
		if _, err := s.Renew(ctx, "lab-b", l.ID, time.Minute); !errors.Is(err, ErrNotYours) {
			t.Errorf("lab-b renewing lab-a's lease: %v, want ErrNotYours", err)
		}
		if _, err := s.BeginReport(ctx, "lab-b", l.ID); !errors.Is(err, ErrNotYours) {
			t.Errorf("lab-b reporting lab-a's lease: %v, want ErrNotYours", err)
		}
		if !s.Live(ctx, "lab-a", "r1", 1) || s.Live(ctx, "lab-b", "r1", 1) || s.Live(ctx, "lab-a", "r1", 2) {
			t.Error("Live: only lab-a's attempt 1 is live")
		}
		time.Sleep(400 * time.Millisecond)
		if _, err := s.Renew(ctx, "lab-a", l.ID, time.Minute); !errors.Is(err, ErrLeaseGone) {
			t.Errorf("renewing an expired lease: %v, want ErrLeaseGone", err)
		}
		lost, err := s.TakeExpired(ctx, time.Hour)
		if err != nil || len(lost) != 1 || lost[0].ID != "r1" {
			t.Fatalf("expired: %+v %v", lost, err)
		}
		if _, err := s.BeginReport(ctx, "lab-a", l.ID); !errors.Is(err, ErrLeaseGone) {
			t.Errorf("a late run: %v, want ErrLeaseGone", err)
		}
		if err := s.Requeue(ctx, lost[0], time.Now(), "lost"); err != nil {
			t.Fatal(err)
		}
		l2, err := s.Lease(ctx, Board{Name: "b1", Lab: "lab-b"}, time.Minute)
		if err != nil || l2 == nil || l2.Attempt != 2 {
			t.Fatalf("second lease: %+v %v, want attempt 2", l2, err)
		}
		r, err := s.BeginReport(ctx, "lab-b", l2.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginReport(ctx, "lab-b", l2.ID); err != nil {
			t.Errorf("a run sent again while reporting: %v", err)
		}
		if err := s.Complete(ctx, r, Outcome{State: StateFinished, Outcome: "PASSED", Results: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginReport(ctx, "lab-b", l2.ID); !errors.Is(err, ErrFinished) {
			t.Errorf("a run sent after it was reported: %v, want ErrFinished", err)
		}
		got, _ := s.Get(ctx, "r1")
		if got.State != StateFinished || got.Attempt != 2 || got.Lab != "lab-b" || got.Outcome != "PASSED" {
			t.Errorf("request %+v", got)
		}
	})
}

// TestTokensAreHashedAndRevocable: the database holds no token, only its
// hash; a revoked token names no lab.
func TestTokensAreHashedAndRevocable(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		tok, err := s.AddToken(ctx, "lab-a")
		if err != nil || !strings.HasPrefix(tok, TokenPrefix) || len(tok) < 40 {
			t.Fatalf("token %q %v", tok, err)
		}
		var stored string
		s.db.QueryRow("SELECT hash FROM lab_tokens").Scan(&stored)
		if stored == tok || strings.Contains(stored, tok[len(TokenPrefix):]) || stored != hashToken(tok) {
			t.Errorf("stored %q for token %q: want its SHA-256 only", stored, tok)
		}
		if lab, err := s.LabOf(ctx, tok); err != nil || lab != "lab-a" {
			t.Errorf("LabOf: %q %v", lab, err)
		}
		if _, err := s.LabOf(ctx, tok+"x"); !errors.Is(err, ErrBadToken) {
			t.Errorf("a wrong token: %v", err)
		}
		if n, err := s.RevokeTokens(ctx, "lab-a"); err != nil || n != 1 {
			t.Errorf("revoke: %d %v", n, err)
		}
		if _, err := s.LabOf(ctx, tok); !errors.Is(err, ErrRevoked) {
			t.Errorf("a revoked token: %v", err)
		}
		if _, err := s.AddToken(ctx, "bad/name"); err == nil {
			t.Error("a lab name with / was taken")
		}
	})
}

// TestBoardsBelongToTheirLab: a board of one lab is not taken over by
// another; labels a poll does not give stay as put.
func TestBoardsBelongToTheirLab(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.PutBoard(ctx, Board{Name: "bbb-1", Lab: "lab-a", Labels: Labels{"board": "beaglebone-black"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Seen(ctx, Board{Name: "bbb-1", Lab: "lab-b"}); !errors.Is(err, ErrNotYours) {
			t.Errorf("lab-b polling as lab-a's board: %v", err)
		}
		b, err := s.Seen(ctx, Board{Name: "bbb-1", Lab: "lab-a", Agent: "host:1"})
		if err != nil || b.Labels["board"] != "beaglebone-black" || b.LastSeen == nil || b.Agent != "host:1" {
			t.Errorf("seen: %+v %v", b, err)
		}
		if err := s.RemoveBoard(ctx, "bbb-1", "lab-b"); !errors.Is(err, ErrNotYours) {
			t.Errorf("lab-b removing lab-a's board: %v", err)
		}
		if err := s.RemoveBoard(ctx, "bbb-1", ""); err != nil {
			t.Fatal(err)
		}
		if bs, _ := s.Boards(ctx); len(bs) != 0 {
			t.Errorf("boards left: %+v", bs)
		}
	})
}

func TestLabelsParseAndMatch(t *testing.T) {
	l, err := ParseLabels([]string{"arch=armv7hl", "board=beaglebone-black,cpu=cortex-a9"})
	if err != nil || l.String() != "arch=armv7hl,board=beaglebone-black,cpu=cortex-a9" {
		t.Fatalf("%v %v", l, err)
	}
	if !l.Satisfies(Labels{"cpu": "cortex-a9"}) || l.Satisfies(Labels{"cpu": "cortex-a8"}) || !l.Satisfies(nil) {
		t.Error("Satisfies")
	}
	for _, bad := range []string{"novalue", "=x", "k=", "k=a b", "k=a\x00", "a=1,a=2", "k;rm=x"} {
		if _, err := ParseLabels([]string{bad}); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want a one-line error", bad, err)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"arch=armv7hl", "a=b,c=d", "=", "k=v=w", "a=1,a=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLabels([]string{s})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error not one line: %q", err)
			}
			return
		}
		// What parses prints back as the same labels.
		again, err := ParseLabels([]string{l.String()})
		if err != nil || again.String() != l.String() {
			t.Errorf("%q -> %q -> %q, %v", s, l.String(), again.String(), err)
		}
	})
}

func TestPruneKeepsWhatHasNotEnded(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.Put(ctx, []Request{req("done", 0, nil), req("waiting", 0, nil)})
		l, _ := s.Lease(ctx, Board{Name: "b", Lab: "l"}, time.Minute)
		r, _ := s.BeginReport(ctx, "l", l.ID)
		if err := s.Complete(ctx, r, Outcome{State: StateFinished}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Prune(ctx, time.Now().Add(time.Second)); err != nil || n != 1 {
			t.Fatalf("pruned %d %v, want 1", n, err)
		}
		if _, err := s.Get(ctx, "waiting"); err != nil {
			t.Errorf("a queued request was pruned: %v", err)
		}
	})
}
