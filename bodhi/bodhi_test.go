package bodhi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/contract"
	fakebodhi "github.com/taskotron-go/taskotron/fakes/bodhi"
)

func start(t *testing.T) *fakebodhi.Server {
	t.Helper()
	s, err := fakebodhi.Load("../fixtures/bodhi/updates.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(s *fakebodhi.Server, token string) *bodhi.Client {
	return bodhi.New(s.URL(), bodhi.Options{Timeout: 2 * time.Second, Retries: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Token: token})
}

func TestUpdate(t *testing.T) {
	s := start(t)
	c := client(s, "")
	ctx := context.Background()
	u, err := c.Update(ctx, "FEDORA-2024-0a1b2c3d4e")
	if err != nil {
		t.Fatal(err)
	}
	if u.Release.DistTag != "f40" || len(u.Builds) != 2 || u.Builds[0].NVR != "pyboth-2.0-1.fc40" || u.Builds[0].Epoch != 1 {
		t.Errorf("update = %+v", u)
	}
	if _, err := c.Update(ctx, "FEDORA-2024-nope"); !errors.Is(err, bodhi.ErrNotFound) {
		t.Errorf("unknown update gave %v", err)
	}
	us, err := c.UpdatesForBuild(ctx, "lintbad-0.1-1.fc40")
	if err != nil || len(us) != 1 || us[0].Alias != "FEDORA-2024-5f6e7d8c9b" {
		t.Errorf("updates for lintbad = %+v, %v", us, err)
	}
	s.FailNext(1)
	if _, err := c.Update(ctx, "FEDORA-2024-0a1b2c3d4e"); err != nil {
		t.Errorf("one 503 must be retried: %v", err)
	}
	s.FailNext(10)
	var ue *bodhi.UnavailableError
	if _, err := c.Update(ctx, "FEDORA-2024-0a1b2c3d4e"); !errors.As(err, &ue) {
		t.Errorf("a Bodhi that stays down gave %v", err)
	}
}

func TestComment(t *testing.T) {
	s := start(t)
	s.Token = "sekrit"
	ctx := context.Background()
	bc := contract.BodhiComment{Update: "FEDORA-2024-5f6e7d8c9b", Text: "Taskotron: rpmlint test FAILED on noarch.", Karma: 0}
	var ae *bodhi.APIError
	if _, err := client(s, "wrong").Comment(ctx, bc); !errors.As(err, &ae) || ae.Status != 403 {
		t.Fatalf("a wrong token gave %v, want 403", err)
	}
	got, err := client(s, "sekrit").Comment(ctx, bc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Update.Alias != bc.Update || got.Text != bc.Text {
		t.Errorf("comment = %+v", got)
	}
	if cs := s.Comments(); len(cs) != 1 || cs[0]["text"] != bc.Text {
		t.Errorf("server kept %v", cs)
	}
	bad := contract.BodhiComment{Update: "FEDORA-2024-nope", Text: "x", Karma: 2}
	_, err = client(s, "sekrit").Comment(ctx, bad)
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(err.Error(), "Invalid update specified") || !strings.Contains(err.Error(), "karma") {
		t.Fatalf("a bad comment gave %v", err)
	}
}

// TestBusyBodhiIsUnavailable: 429 and 408 say "not now", not "no": they
// are infrastructure failures, like a 503.
func TestBusyBodhiIsUnavailable(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusRequestTimeout} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(code)
		}))
		c := bodhi.New(srv.URL, bodhi.Options{Timeout: 2 * time.Second, Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
		var ue *bodhi.UnavailableError
		if _, err := c.UpdatesForBuild(context.Background(), "lintbad-0.1-1.fc40"); !errors.As(err, &ue) {
			t.Errorf("HTTP %d gave %v, want an UnavailableError", code, err)
		}
		srv.Close()
	}
}
