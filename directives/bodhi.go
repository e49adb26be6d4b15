package directives

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/koji"
)

func init() { Register("bodhi", Func(runBodhi)) }

// bodhiClient makes a client for update lookups from the configuration.
func bodhiClient(env *Env) *bodhi.Client {
	c := env.Config.Bodhi
	return bodhi.New(c.URL, bodhi.Options{Timeout: c.Timeout, Retries: configRetries(c.Retries), Log: fedoraLog(env)})
}

func bodhiErr(err error) error {
	var ue *bodhi.UnavailableError
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return Infra(fmt.Errorf("bodhi: %w", err))
	}
	return fmt.Errorf("bodhi: %w", err)
}

// runBodhi downloads the builds of a Bodhi update from Koji (reference
// §2.4): action download, update_id, arch, src, target_dir.
func runBodhi(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "bodhi", m: params}
	action, err := p.str("action", true)
	if err != nil {
		return nil, err
	}
	if action != "download" {
		return nil, p.errorf("unknown action %q (want download)", action)
	}
	id, err := p.str("update_id", true)
	if err != nil {
		return nil, err
	}
	arch, present, err := p.list("arch")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, p.errorf("parameter arch is required (an arch, a list, all, or [])")
	}
	src, err := p.boolean("src", false)
	if err != nil {
		return nil, err
	}
	if len(arch) == 0 && !src {
		return nil, p.errorf("arch is [] and src is false: nothing to download")
	}
	target, err := p.dir("target_dir", env.WorkDir, env)
	if err != nil {
		return nil, err
	}
	u, err := bodhiClient(env).Update(ctx, id)
	if errors.Is(err, bodhi.ErrNotFound) {
		return nil, p.errorf("update %s not found", id)
	}
	if err != nil {
		return nil, bodhiErr(err)
	}
	dl := kojiDownload{c: kojiClient(env), sel: koji.NewSelection(arch, nil, src, false), target: target, env: env}
	for _, b := range u.Builds {
		kb, err := dl.c.GetBuild(ctx, b.NVR)
		if err != nil {
			return nil, kojiErr(fmt.Errorf("build %s of update %s: %w", b.NVR, id, err))
		}
		if err := dl.build(ctx, kb); err != nil {
			return nil, err
		}
	}
	sort.Strings(dl.rpms)
	builds := make([]any, len(u.Builds))
	for i, b := range u.Builds {
		builds[i] = b.NVR
	}
	return map[string]any{"downloaded_rpms": anyStrings(dl.rpms), "builds": builds, "release": u.Release.DistTag}, nil
}
