package fakes_test

import (
	"context"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/fakes"
	"github.com/taskotron-go/taskotron/koji"
)

func TestStartAll(t *testing.T) {
	set, err := fakes.Start("../fixtures", fakes.AnyPort, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	cfg := config.Default()
	set.Apply(&cfg)
	ctx := context.Background()
	if b, err := koji.New(cfg.Koji.URL, cfg.Koji.PkgURL, koji.Options{}).GetBuild(ctx, "lintbad-0.1-1.fc40"); err != nil || b.Name != "lintbad" {
		t.Errorf("koji through the applied config: %+v, %v", b, err)
	}
	if u, err := bodhi.New(cfg.Bodhi.URL, bodhi.Options{}).Update(ctx, "FEDORA-2024-5f6e7d8c9b"); err != nil || len(u.Builds) != 1 {
		t.Errorf("bodhi through the applied config: %+v, %v", u, err)
	}
	env := strings.Join(set.Env(), "\n")
	for _, k := range []string{"TASKOTRON_KOJI_URL=", "TASKOTRON_KOJI_PKG_URL=", "TASKOTRON_BODHI_URL=", "TASKOTRON_DISTGIT_URL="} {
		if !strings.Contains(env, k) {
			t.Errorf("Env() lacks %s: %s", k, env)
		}
	}
	// The overrides are ones config.Load accepts.
	if _, err := config.Load("", set.Env()); err != nil {
		t.Errorf("config.Load rejects the overrides: %v", err)
	}
}

func TestStartBadFixtures(t *testing.T) {
	if _, err := fakes.Start(t.TempDir(), fakes.AnyPort, nil); err == nil || !strings.Contains(err.Error(), "koji.yaml") {
		t.Errorf("missing fixtures gave %v", err)
	}
}
