package directives

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/contract"
)

const commentTAP = `TAP version 13
1..3
not ok 1 - rpmlint for Koji build lintbad-0.1-1.fc40
  ---
  item: lintbad-0.1-1.fc40
  type: koji_build
  outcome: FAILED
  checkname: rpmlint
  note: 2 errors, 1 warnings
  arch: noarch
  ...
ok 2 - rpmlint for Koji build pythree-3.1-1.fc40
  ---
  item: pythree-3.1-1.fc40
  type: koji_build
  outcome: PASSED
  checkname: rpmlint
  ...
not ok 3 - upgradepath
  ---
  item: FEDORA-2024-0a1b2c3d4e
  type: bodhi_update
  outcome: ABORTED
  checkname: upgradepath
  ...
`

func TestBodhiComment(t *testing.T) {
	b := startFakeBodhi(t)
	env := fedoraEnv(t, nil)
	env.Config.Bodhi.URL = b.URL()
	env.Config.Runner.ArtifactsURL = "http://example.org/artifacts"
	env.Vars["uuid"] = "u-1"
	out, err := runDirective(t, "bodhi_comment", map[string]any{"results": commentTAP}, env)
	if err != nil {
		t.Fatal(err)
	}
	cs := env.TakeComments()
	if len(cs) != 1 || cs[0].Update != "FEDORA-2024-5f6e7d8c9b" {
		t.Fatalf("comments = %+v (%v), want one on lintbad's update", cs, out)
	}
	want := "Taskotron: rpmlint test FAILED on noarch. Result log: http://example.org/artifacts/u-1"
	if cs[0].Text != want {
		t.Errorf("text = %q\nwant %q", cs[0].Text, want)
	}
	if len(env.TakeComments()) != 0 {
		t.Errorf("TakeComments must forget what it returned")
	}
	// The comment is what Bodhi accepts.
	if _, err := bodhi.New(b.URL(), bodhi.Options{}).Comment(context.Background(), cs[0]); err != nil {
		t.Errorf("fake Bodhi refused the comment: %v", err)
	}
	// doreport: all comments on passes too, never on broken runs.
	if _, err := runDirective(t, "bodhi_comment", map[string]any{"results": commentTAP, "doreport": "all", "update": "FEDORA-2024-0a1b2c3d4e"}, env); err != nil {
		t.Fatal(err)
	}
	cs = env.TakeComments()
	if len(cs) != 1 || strings.Count(cs[0].Text, "\n") != 1 || strings.Contains(cs[0].Text, "ABORTED") {
		t.Errorf("doreport all = %+v", cs)
	}
	for params, want := range map[string]map[string]any{
		"doreport": {"results": commentTAP, "doreport": "some"},
		"results":  {"results": "no output at all"},
		"required": {},
	} {
		if _, err := runDirective(t, "bodhi_comment", want, env); err == nil || !strings.Contains(err.Error(), "bodhi_comment") {
			t.Errorf("bad %s gave %v", params, err)
		}
	}
}

func TestBodhiCommentReadsNoFileOutsideTheRun(t *testing.T) {
	env := testEnv(t)
	outside := filepath.Join(t.TempDir(), "secret.yml")
	if err := os.WriteFile(outside, []byte("results: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runBodhiComment(context.Background(), map[string]any{"file": outside}, env)
	if err == nil || !strings.Contains(err.Error(), "bodhi_comment") {
		t.Fatalf("a file outside the task, work and artifacts folders was read: err = %v", err)
	}
}

// TestBodhiCommentWhileBodhiIsAway: when Bodhi cannot say which updates
// hold a build, the run goes on and hands the reporter one comment per
// build (Extra "build") to resolve when Bodhi is back; Bodhi is asked
// once, not once per build.
func TestBodhiCommentWhileBodhiIsAway(t *testing.T) {
	var asked atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "503 Service Unavailable", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	env := fedoraEnv(t, nil)
	env.Config.Bodhi.URL = down.URL
	env.Config.Runner.ArtifactsURL = "http://example.org/artifacts"
	env.Vars["uuid"] = "u-2"
	out, err := runDirective(t, "bodhi_comment", map[string]any{"results": commentTAP, "doreport": "all"}, env)
	if err != nil {
		t.Fatalf("a Bodhi outage failed the action: %v", err)
	}
	cs := env.TakeComments()
	if len(cs) != 2 {
		t.Fatalf("comments = %+v (%v), want one per build", cs, out)
	}
	for i, want := range []struct{ build, text string }{
		{"lintbad-0.1-1.fc40", "Taskotron: rpmlint test FAILED on noarch. Result log: http://example.org/artifacts/u-2"},
		{"pythree-3.1-1.fc40", "Taskotron: rpmlint test PASSED on noarch. Result log: http://example.org/artifacts/u-2"},
	} {
		if cs[i].Update != "" || cs[i].Extra["build"] != want.build || cs[i].Text != want.text {
			t.Errorf("comment %d = %+v, want build %s, text %q", i, cs[i], want.build, want.text)
		}
	}
	if n := asked.Load(); n != 2 { // one request and its one retry (bodhi.retries = 1)
		t.Errorf("Bodhi was asked %d times, want 2", n)
	}
	// The comments travel in the execution as JSON; the reporter reads the
	// build back.
	raw, err := json.Marshal(contract.Execution{UUID: "u-2", BodhiComments: cs})
	if err != nil {
		t.Fatal(err)
	}
	var back contract.Execution
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.BodhiComments; len(got) != 2 || got[0].Extra["build"] != "lintbad-0.1-1.fc40" {
		t.Errorf("read back: %+v", got)
	}
	// A Bodhi that answers "no" is still an error of the action.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"status": "error", "errors": [{"location": "querystring", "name": "builds", "description": "Invalid builds specified"}]}`))
	}))
	defer refusing.Close()
	env.Config.Bodhi.URL = refusing.URL
	if _, err := runDirective(t, "bodhi_comment", map[string]any{"results": commentTAP}, env); err == nil || !strings.Contains(err.Error(), "Invalid builds specified") {
		t.Errorf("a refused lookup gave %v", err)
	}
}
