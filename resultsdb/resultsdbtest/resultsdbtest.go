// Package resultsdbtest serves our ResultsDB for other packages' tests: a
// real server on a temporary SQLite file, over a real socket, accepting the
// ABORTED and CRASHED outcomes Taskotron reports, as production runs it.
package resultsdbtest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/taskotron-go/taskotron/resultsdb"
)

// Start serves a fresh ResultsDB until the test ends and returns its root
// URL; the API is below URL + "/api/v2.0".
func Start(t testing.TB) string {
	t.Helper()
	store, err := resultsdb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "resultsdb.sqlite"))
	if err != nil {
		t.Fatalf("ResultsDB for the test: %v", err)
	}
	srv := httptest.NewServer(resultsdb.NewServer(store, resultsdb.Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}))
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	return srv.URL
}
