// Package fakes starts the Fedora service doubles together (Koji hub and
// packages tree, Bodhi, dist-git) from a fixtures folder, and points a
// configuration at them: for `make run`, end-to-end tests and task authors.
package fakes

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/taskotron-go/taskotron/config"
	fakebodhi "github.com/taskotron-go/taskotron/fakes/bodhi"
	fakedistgit "github.com/taskotron-go/taskotron/fakes/distgit"
	fakekoji "github.com/taskotron-go/taskotron/fakes/koji"
)

// Addrs are the listen addresses; an empty one leaves that double out.
// "127.0.0.1:0" picks a free port.
type Addrs struct {
	Koji, Bodhi, DistGit string
}

// AnyPort starts every double on a free local port.
var AnyPort = Addrs{Koji: "127.0.0.1:0", Bodhi: "127.0.0.1:0", DistGit: "127.0.0.1:0"}

// Set is the running doubles.
type Set struct {
	Koji    *fakekoji.Hub
	Bodhi   *fakebodhi.Server
	DistGit *fakedistgit.Server
}

// Start loads fixtures/koji/koji.yaml, fixtures/bodhi/updates.json and
// fixtures/distgit below fixtures and serves them.
func Start(fixtures string, addrs Addrs, log *slog.Logger) (*Set, error) {
	s := &Set{}
	fail := func(err error) (*Set, error) {
		s.Close()
		return nil, err
	}
	if addrs.Koji != "" {
		d, err := fakekoji.Load(filepath.Join(fixtures, "koji", "koji.yaml"))
		if err != nil {
			return fail(err)
		}
		h := fakekoji.NewHub(d, log)
		if err := h.Start(addrs.Koji); err != nil {
			return fail(err)
		}
		s.Koji = h
	}
	if addrs.Bodhi != "" {
		b, err := fakebodhi.Load(filepath.Join(fixtures, "bodhi", "updates.json"))
		if err != nil {
			return fail(err)
		}
		if err := b.Start(addrs.Bodhi); err != nil {
			return fail(err)
		}
		s.Bodhi = b
	}
	if addrs.DistGit != "" {
		g, err := fakedistgit.New(filepath.Join(fixtures, "distgit"))
		if err != nil {
			return fail(err)
		}
		if err := g.Start(addrs.DistGit); err != nil {
			return fail(err)
		}
		s.DistGit = g
	}
	return s, nil
}

// Env lists the configuration overrides (TASKOTRON_…=value) that point
// taskotron at the running doubles.
func (s *Set) Env() []string {
	var env []string
	if s.Koji != nil {
		env = append(env, config.EnvPrefix+"KOJI_URL="+s.Koji.HubURL(), config.EnvPrefix+"KOJI_PKG_URL="+s.Koji.PkgURL())
	}
	if s.Bodhi != nil {
		env = append(env, config.EnvPrefix+"BODHI_URL="+s.Bodhi.URL(), config.EnvPrefix+"BODHI_COMMENTS=true")
	}
	if s.DistGit != nil {
		env = append(env, config.EnvPrefix+"DISTGIT_URL="+s.DistGit.URL())
	}
	return env
}

// Apply points cfg at the running doubles.
func (s *Set) Apply(cfg *config.Config) {
	if s.Koji != nil {
		cfg.Koji.URL, cfg.Koji.PkgURL = s.Koji.HubURL(), s.Koji.PkgURL()
	}
	if s.Bodhi != nil {
		cfg.Bodhi.URL, cfg.Bodhi.Comments = s.Bodhi.URL(), true
	}
	if s.DistGit != nil {
		cfg.DistGit.URL = s.DistGit.URL()
	}
}

// Close stops every running double.
func (s *Set) Close() error {
	var errs []error
	if s.Koji != nil {
		errs = append(errs, s.Koji.Close())
	}
	if s.Bodhi != nil {
		errs = append(errs, s.Bodhi.Close())
	}
	if s.DistGit != nil {
		errs = append(errs, s.DistGit.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fakes: %w", err)
	}
	return nil
}
