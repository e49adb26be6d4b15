package reporter_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	fakebodhi "github.com/taskotron-go/taskotron/fakes/bodhi"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/resultsdb"
)

// ourResultsDB opens our ResultsDB server's store on a SQLite file.
func ourResultsDB(t testing.TB) (resultsdb.Store, http.Handler) {
	t.Helper()
	store, err := resultsdb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "resultsdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, resultsdb.NewServer(store, resultsdb.Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}})
}

func newReporter(t testing.TB, url string) *reporter.Reporter {
	t.Helper()
	r, err := reporter.New(reporter.Options{
		ResultsDBURL: url, SpoolDir: t.TempDir(),
		ArtifactsURL: "https://taskotron.example/artifacts/all", ExecDBURL: "https://taskotron.example/execdb",
		TestcaseURL: "https://fedoraproject.org/wiki/Taskotron/Tasks",
		RetryMax:    1, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func exec(uuid string, n int) contract.Execution {
	e := contract.Execution{UUID: uuid, ExecutionStatus: contract.ExecutionOK, Item: "xchat-0.5-1.fc20", ItemType: "koji_build", TaskName: "rpmlint", Arch: "x86_64"}
	for i := 0; i < n; i++ {
		e.Results = append(e.Results, contract.Result{Item: "xchat-0.5-1.fc20", Type: "koji_build", CheckName: "dist.rpmlint",
			Outcome: contract.Outcomes[i%len(contract.Outcomes)], Note: fmt.Sprintf("note %d", i), Arch: contract.OneArch("x86_64"),
			Extra: contract.Extra{"scenario": "x86_64", "n": i}})
	}
	return e
}

func groupCount(t *testing.T, r *reporter.Reporter, url, uuid string) int {
	t.Helper()
	c, err := reporter.NewResultsDBClient(url, reporter.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.GroupResults(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

// TestOurResultsDBTakesWhatWePost: every post is accepted by our server
// and reads back the same; reporting again stores nothing.
func TestOurResultsDBTakesWhatWePost(t *testing.T) {
	_, h := ourResultsDB(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := newReporter(t, srv.URL)
	ctx := context.Background()
	e := exec("7d8f5c2e-0000-4000-8000-000000000001", 6)
	d, err := r.Deliver(ctx, e)
	if err != nil || d.Stored != 6 || d.Rejected != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	c, _ := reporter.NewResultsDBClient(srv.URL, reporter.ClientOptions{})
	got, err := c.GroupResults(ctx, e.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("%d results", len(got))
	}
	for _, s := range got {
		if s.Testcase != "dist.rpmlint" || s.Data["item"][0] != "xchat-0.5-1.fc20" || s.Data["scenario"][0] != "x86_64" || s.SubmitTime.IsZero() {
			t.Errorf("stored %+v", s)
		}
	}
	// A second reporter (another host, no local marker) stores nothing.
	d, err = newReporter(t, srv.URL).Deliver(ctx, e)
	if err != nil || d.Present != 6 || d.Stored != 0 {
		t.Fatalf("second delivery %+v %v", d, err)
	}
}

// TestOutageAgainstOurResultsDB: our server goes away and comes back on the
// same address; every result arrives exactly once.
func TestOutageAgainstOurResultsDB(t *testing.T) {
	_, h := ourResultsDB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	url := "http://" + addr
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	r := newReporter(t, url)
	ctx := context.Background()
	var execs []contract.Execution
	for i := 0; i < 12; i++ {
		if i == 4 {
			srv.Close() // ResultsDB goes down
		}
		e := exec(fmt.Sprintf("7d8f5c2e-0000-4000-8000-0000000001%02d", i), 1+i%3)
		execs = append(execs, e)
		if err := r.Report(ctx, e); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if n, _ := r.Spooled(); n == 0 {
		t.Fatal("nothing spooled during the outage")
	}
	var ln2 net.Listener
	for i := 0; i < 100; i++ {
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	srv2 := &http.Server{Handler: h}
	go srv2.Serve(ln2)
	defer srv2.Close()
	for _, e := range execs {
		if err := r.Report(ctx, e); err != nil { // reported twice: redelivery
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for _, e := range execs {
		if n := groupCount(t, r, url, e.UUID); n != len(e.Results) {
			t.Errorf("%s: %d results, want %d", e.UUID, n, len(e.Results))
		}
	}
}

// BenchmarkReportOurResultsDB reports executions of 10 results each to our
// embedded ResultsDB (SQLite) and prints results posted per second.
func BenchmarkReportOurResultsDB(b *testing.B) {
	_, h := ourResultsDB(b)
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := newReporter(b, srv.URL)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n++
		if err := r.Report(ctx, exec(fmt.Sprintf("bench-%d", n), 10)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*10)/b.Elapsed().Seconds(), "results/s")
}

// TestCommentsOnOurBodhiDouble: the comment is accepted by the project's
// Bodhi double (CSRF token, bearer token, Bodhi's validation).
func TestCommentsOnOurBodhiDouble(t *testing.T) {
	fb, err := fakebodhi.Load("../fixtures/bodhi/updates.json")
	if err != nil {
		t.Fatal(err)
	}
	fb.Token = "bodhi-secret"
	if err := fb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	_, h := ourResultsDB(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	r, err := reporter.New(reporter.Options{
		ResultsDBURL: srv.URL, SpoolDir: t.TempDir(), ArtifactsURL: "https://taskotron.example/artifacts/all",
		Bodhi: reporter.BodhiOptions{URL: fb.URL(), Token: "bodhi-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := contract.Execution{UUID: "7d8f5c2e-0000-4000-8000-00000000b0d1", ExecutionStatus: "OK", TaskName: "depcheck", Results: []contract.Result{
		{Item: "FEDORA-2024-0a1b2c3d4e", Type: "bodhi_update", CheckName: "dist.depcheck", Outcome: contract.Failed, Arch: contract.OneArch("x86_64")},
	}}
	d, err := r.Deliver(context.Background(), e)
	if err != nil || d.Stored != 1 || d.Comments != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	cs := fb.Comments()
	want := "Taskotron: dist.depcheck test FAILED on x86_64. Result log: https://taskotron.example/artifacts/all/7d8f5c2e-0000-4000-8000-00000000b0d1/"
	if len(cs) != 1 || cs[0]["text"] != want {
		t.Fatalf("comments = %v", cs)
	}
}
