package reporter

import (
	"context"
	"strings"
	"testing"
)

// TestOneBadPostDoesNotBlockTheOthers: a ResultsDB that answers 500 to one
// post (content it cannot store) while it takes the others: the others are
// stored at once and later ones too, nothing waits behind the bad one, and
// once ResultsDB has failed on it alone a few times it is set aside in the
// rejected folder with ResultsDB's answer.
func TestOneBadPostDoesNotBlockTheOthers(t *testing.T) {
	f := &fakeResultsDB{poison: "POISON"}
	srv := httptestServer(f)
	defer srv.Close()
	spool := t.TempDir()
	r, logs := newTestReporter(t, srv.URL, spool, nil)
	ctx := context.Background()

	bad := execution("u-bad", 3)
	bad.Results[2].Note = "POISON \x00 in the note"
	d, err := r.Deliver(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stored != 2 || d.Spooled != 1 || f.count("u-bad") != 2 {
		t.Fatalf("delivery %+v, stored %d; want the two good posts stored and the bad one spooled", d, f.count("u-bad"))
	}
	// Later executions go straight through, ahead of the waiting post.
	for i, uuid := range []string{"u-1", "u-2", "u-3", "u-4"} {
		d, err := r.Deliver(ctx, execution(uuid, 1))
		if err != nil || d.Stored != 1 || d.Spooled != 0 {
			t.Fatalf("execution %d: %+v %v; want it stored at once\n%s", i, d, err, logs)
		}
	}
	p, err := r.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if p.Posts != 0 || p.RejectedPosts != 1 {
		t.Fatalf("spool %+v; want the bad post set aside after failing alone, nothing waiting\n%s", p, logs)
	}
	if !strings.Contains(logs.String(), "ResultsDB failed on this post") {
		t.Errorf("the log does not say why the post was set aside:\n%s", logs)
	}
}

// TestAnOutageSetsNothingAside: when every post answers 500 (ResultsDB's
// database is down), posts wait in the spool however often they are tried,
// and go out once ResultsDB is back.
func TestAnOutageSetsNothingAside(t *testing.T) {
	f := &fakeResultsDB{poison: "warnings"} // every post of execution()
	srv := httptestServer(f)
	defer srv.Close()
	r, _ := newTestReporter(t, srv.URL, t.TempDir(), nil)
	ctx := context.Background()
	for _, uuid := range []string{"o-1", "o-2", "o-3"} {
		if _, err := r.Deliver(ctx, execution(uuid, 2)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		r.Flush(ctx)
	}
	p, _ := r.Pending()
	if p.RejectedPosts != 0 || p.Posts != 6 {
		t.Fatalf("spool during the outage %+v; want all 6 posts waiting, none set aside", p)
	}
	f.mu.Lock()
	f.poison = ""
	f.mu.Unlock()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.total(); n != 6 {
		t.Fatalf("ResultsDB holds %d results after the outage, want 6", n)
	}
}
