package directives

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/config"
	fakebodhi "github.com/taskotron-go/taskotron/fakes/bodhi"
	fakedistgit "github.com/taskotron-go/taskotron/fakes/distgit"
	fakekoji "github.com/taskotron-go/taskotron/fakes/koji"
)

// startFakeKoji serves the fixture Koji data on a real socket.
func startFakeKoji(t *testing.T) *fakekoji.Hub {
	t.Helper()
	d, err := fakekoji.Load("../fixtures/koji/koji.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := fakekoji.NewHub(d, nil)
	if err := h.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// fedoraEnv is a run environment whose services are the given doubles.
func fedoraEnv(t *testing.T, kojiHub *fakekoji.Hub) *Env {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if kojiHub != nil {
		cfg.Koji.URL, cfg.Koji.PkgURL = kojiHub.HubURL(), kojiHub.PkgURL()
	}
	cfg.Koji.Retries, cfg.Bodhi.Retries, cfg.DistGit.Retries = 1, 1, 1
	cfg.Koji.Timeout, cfg.Bodhi.Timeout, cfg.DistGit.Timeout = 2*time.Second, 2*time.Second, 2*time.Second
	cfg.Koji.YumRepoInfo = "../fixtures/koji/yumrepoinfo.conf"
	return &Env{
		TaskDir: t.TempDir(), WorkDir: t.TempDir(), ArtifactsDir: t.TempDir(),
		Vars: map[string]any{}, Config: cfg,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func runDirective(t *testing.T, name string, params map[string]any, env *Env) (any, error) {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("directive %s is not registered", name)
	}
	env.ActionName = "test " + name
	return d.Run(context.Background(), params, env)
}

func baseNames(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, filepath.Base(x.(string)))
	}
	return out
}

func startFakeBodhi(t *testing.T) *fakebodhi.Server {
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

func startFakeDistGit(t *testing.T) *fakedistgit.Server {
	t.Helper()
	s, err := fakedistgit.New("../fixtures/distgit")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
