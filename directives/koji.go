package directives

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/koji"
	"github.com/taskotron-go/taskotron/rpmver"
)

func init() { Register("koji", Func(runKoji)) }

// kojiClient makes a client from the run's configuration.
func kojiClient(env *Env) *koji.Client {
	c := env.Config.Koji
	return koji.New(c.URL, c.PkgURL, koji.Options{
		Timeout: c.Timeout, Retries: configRetries(c.Retries), CacheDir: env.Config.Path(c.CacheDir), Log: fedoraLog(env),
	})
}

// configRetries maps koji.retries to the clients' option, where 0 means
// their default: in the configuration 0 means no retries.
func configRetries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// kojiErr turns the client's errors into directive errors: a hub or file
// server that stays unusable is an infrastructure failure (ABORTED).
func kojiErr(err error) error {
	var ue *koji.UnavailableError
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return Infra(fmt.Errorf("koji: %w", err))
	}
	return fmt.Errorf("koji: %w", err)
}

// runKoji is libtaskotron's koji directive: action download,
// download_tag or download_latest_stable (reference §2.4), plus the
// taskotron extension latest_by_release that upgradepath uses.
func runKoji(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "koji", m: params}
	action, err := p.str("action", true)
	if err != nil {
		return nil, err
	}
	c := kojiClient(env)
	if action == "latest_by_release" {
		return kojiLatestByRelease(ctx, p, c, env)
	}
	arch, present, err := p.list("arch")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, p.errorf("parameter arch is required (an arch, a list, all, or [])")
	}
	exclude, _, err := p.list("arch_exclude")
	if err != nil {
		return nil, err
	}
	src, err := p.boolean("src", false)
	if err != nil {
		return nil, err
	}
	debuginfo, err := p.boolean("debuginfo", false)
	if err != nil {
		return nil, err
	}
	buildLog, err := p.boolean("build_log", false)
	if err != nil {
		return nil, err
	}
	sel := koji.NewSelection(arch, exclude, src, debuginfo)
	target, err := p.dir("target_dir", env.WorkDir, env)
	if err != nil {
		return nil, err
	}
	dl := kojiDownload{c: c, sel: sel, target: target, buildLog: buildLog, env: env}
	switch action {
	case "download":
		nvr, err := p.str("koji_build", true)
		if err != nil {
			return nil, err
		}
		// Koji looks builds up by N-V-R; an N-E:V-R names the same build.
		if n, err := rpmver.ParseNVR(nvr); err == nil && n.Epoch != 0 {
			nvr = n.Name + "-" + n.Version + "-" + n.Release
		}
		b, err := c.GetBuild(ctx, nvr)
		if err != nil {
			return nil, kojiErr(err)
		}
		if err := dl.build(ctx, b); err != nil {
			return nil, err
		}
	case "download_tag":
		tag, err := p.str("koji_tag", true)
		if err != nil {
			return nil, err
		}
		builds, err := c.ListTagged(ctx, tag, true, false, "")
		if err != nil {
			return nil, kojiErr(err)
		}
		for _, b := range builds {
			if err := dl.build(ctx, b); err != nil {
				return nil, err
			}
		}
	case "download_latest_stable":
		nvr, err := p.str("koji_build", true)
		if err != nil {
			return nil, err
		}
		b, found, err := latestStable(ctx, c, nvr)
		if err != nil {
			return nil, err
		}
		if !found {
			fedoraLog(env).Info("koji: no stable build", "koji_build", nvr)
			return map[string]any{}, nil
		}
		if err := dl.build(ctx, b); err != nil {
			return nil, err
		}
	default:
		return nil, p.errorf("unknown action %q (want download, download_tag, download_latest_stable or latest_by_release)", action)
	}
	sort.Strings(dl.rpms)
	return map[string]any{
		"downloaded_rpms": anyStrings(dl.rpms),
		"downloaded_logs": anyStrings(dl.logs),
		"log_errors":      anyStrings(dl.logErrors),
	}, nil
}

type kojiDownload struct {
	c                     *koji.Client
	sel                   koji.Selection
	target                string
	buildLog              bool
	env                   *Env
	rpms, logs, logErrors []string
}

func (d *kojiDownload) build(ctx context.Context, b koji.Build) error {
	if b.State != koji.StateComplete {
		return fmt.Errorf("koji: build %s is not complete (state %d)", b.NVR, b.State)
	}
	rpms, err := d.c.ListRPMs(ctx, b.ID, d.sel.HubArches())
	if err != nil {
		return kojiErr(err)
	}
	arches := map[string]bool{}
	for _, r := range rpms {
		if !d.sel.Keep(r) {
			continue
		}
		path, err := d.c.DownloadRPM(ctx, b, r, d.target)
		if err != nil {
			return kojiErr(err)
		}
		d.rpms = append(d.rpms, path)
		if r.Arch != "src" {
			arches[r.Arch] = true
		}
	}
	if !d.buildLog {
		return nil
	}
	names := make([]string, 0, len(arches))
	for a := range arches {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		dest := filepath.Join(d.target, "build.log."+a)
		if err := d.c.Fetch(ctx, d.c.BuildLogURL(b, a), dest); err != nil {
			// A missing log does not spoil the download; the task sees it.
			fedoraLog(d.env).Warn("koji: build log", "build", b.NVR, "arch", a, "err", err)
			d.logErrors = append(d.logErrors, a)
			continue
		}
		d.logs = append(d.logs, dest)
	}
	return nil
}

// latestStable finds the newest build of nvr's package in fNN-updates, then
// fNN, where NN comes from the release's disttag (fc40 → f40).
func latestStable(ctx context.Context, c *koji.Client, nvr string) (koji.Build, bool, error) {
	n, err := rpmver.ParseNVR(nvr)
	if err != nil {
		return koji.Build{}, false, fmt.Errorf("koji: koji_build: %w", err)
	}
	rel, ok := rpmver.DistTag(n.Release)
	if !ok {
		return koji.Build{}, false, fmt.Errorf("koji: koji_build %s has no Fedora disttag (.fcNN) to find its release", nvr)
	}
	for _, tag := range []string{fmt.Sprintf("f%d-updates", rel), fmt.Sprintf("f%d", rel)} {
		builds, err := c.ListTagged(ctx, tag, true, false, n.Name)
		if errors.Is(err, koji.ErrNotFound) {
			continue
		}
		if err != nil {
			return koji.Build{}, false, kojiErr(err)
		}
		if len(builds) > 0 {
			return builds[0], true, nil
		}
	}
	return koji.Build{}, false, nil
}

var fedoraTag = regexp.MustCompile(`^f([0-9]+)(-.*)?$`)

// kojiLatestByRelease gathers what upgradepath compares: the builds under
// test (koji_tag's latest, or the NVRs in builds) and, for every Fedora
// release near theirs that the hub knows, the newest build of each of their
// packages across fNN, fNN-updates and fNN-updates-testing (newest by rpm's
// own ordering, epochs included).
func kojiLatestByRelease(ctx context.Context, p fparams, c *koji.Client, env *Env) (any, error) {
	tag, err := p.str("koji_tag", false)
	if err != nil {
		return nil, err
	}
	nvrs, _, err := p.list("builds")
	if err != nil {
		return nil, err
	}
	// item + item_type let one formula serve koji_tag, koji_build and
	// bodhi_update items alike.
	item, err := p.str("item", false)
	if err != nil {
		return nil, err
	}
	itemType, err := p.str("item_type", false)
	if err != nil {
		return nil, err
	}
	switch itemType {
	case "":
		if item != "" {
			return nil, p.errorf("item needs item_type (koji_tag, koji_build or bodhi_update)")
		}
	case "koji_tag":
		tag = item
	case "koji_build":
		nvrs = append(nvrs, item)
	case "bodhi_update":
		u, err := bodhiClient(env).Update(ctx, item)
		if errors.Is(err, bodhi.ErrNotFound) {
			return nil, p.errorf("update %s not found in Bodhi", item)
		}
		if err != nil {
			return nil, bodhiErr(err)
		}
		for _, b := range u.Builds {
			nvrs = append(nvrs, b.NVR)
		}
	default:
		return nil, p.errorf("item_type %q: want koji_tag, koji_build or bodhi_update", itemType)
	}
	var builds []koji.Build
	release := 0
	if tag != "" {
		m := fedoraTag.FindStringSubmatch(tag)
		if m == nil {
			return nil, p.errorf("koji_tag %q is not a Fedora tag (fNN or fNN-…)", tag)
		}
		release, _ = strconv.Atoi(m[1])
		if builds, err = c.ListTagged(ctx, tag, true, false, ""); err != nil {
			return nil, kojiErr(err)
		}
	}
	for _, nvr := range nvrs {
		b, err := c.GetBuild(ctx, nvr)
		if err != nil {
			return nil, kojiErr(err)
		}
		builds = append(builds, b)
	}
	if tag == "" && len(nvrs) == 0 {
		return nil, p.errorf("give koji_tag, builds, or item and item_type")
	}
	out := []any{}
	releases := map[string]any{}
	wanted := map[int]bool{}
	for _, b := range builds {
		out = append(out, buildMap(b))
		r := release
		if r == 0 {
			var ok bool
			if r, ok = rpmver.DistTag(b.Release); !ok {
				return nil, p.errorf("build %s has no Fedora disttag (.fcNN)", b.NVR)
			}
		}
		wanted[r] = true
	}
	for r := range wanted {
		for other := r - 3; other <= r+3; other++ {
			name := fmt.Sprintf("f%d", other)
			if other == r || other < 1 || releases[name] != nil {
				continue
			}
			if _, err := c.GetTag(ctx, name); errors.Is(err, koji.ErrNotFound) {
				continue
			} else if err != nil {
				return nil, kojiErr(err)
			}
			newest := map[string]any{}
			for _, b := range builds {
				best, found, err := newestInRelease(ctx, c, other, b.Name)
				if err != nil {
					return nil, err
				}
				if found {
					newest[b.Name] = buildMap(best)
				}
			}
			releases[name] = newest
		}
	}
	res := map[string]any{"builds": out, "releases": releases}
	if release != 0 {
		res["release"] = release
	}
	return res, nil
}

func newestInRelease(ctx context.Context, c *koji.Client, rel int, pkg string) (koji.Build, bool, error) {
	var best koji.Build
	found := false
	for _, suffix := range []string{"", "-updates", "-updates-testing"} {
		got, err := c.ListTagged(ctx, fmt.Sprintf("f%d%s", rel, suffix), true, true, pkg)
		if errors.Is(err, koji.ErrNotFound) {
			continue
		}
		if err != nil {
			return best, false, kojiErr(err)
		}
		for _, b := range got {
			if !found || rpmver.CompareEVR(evrOf(b), evrOf(best)) > 0 {
				best, found = b, true
			}
		}
	}
	return best, found, nil
}

func evrOf(b koji.Build) rpmver.EVR {
	e := rpmver.EVR{Version: b.Version, Release: b.Release}
	if b.Epoch != nil {
		e.Epoch = int(*b.Epoch)
	}
	return e
}

func buildMap(b koji.Build) map[string]any {
	m := map[string]any{"nvr": b.NVR, "name": b.Name, "version": b.Version, "release": b.Release, "epoch": nil}
	if b.Epoch != nil {
		m["epoch"] = *b.Epoch
	}
	if b.TagName != "" {
		m["tag"] = b.TagName
	}
	return m
}
