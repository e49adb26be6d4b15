package directives

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/httpclient"
	"github.com/taskotron-go/taskotron/rpmver"
)

func init() { Register("distgit", Func(runDistGit)) }

// runDistGit downloads raw files from dist-git (reference §2.4):
// {baseurl}/{namespace}/{package}/raw/{gitref}/f/{path}.
func runDistGit(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "distgit", m: params}
	pkg, err := p.str("package", false)
	if err != nil {
		return nil, err
	}
	nvr, err := p.str("nvr", false)
	if err != nil {
		return nil, err
	}
	gitref, err := p.str("gitref", false)
	if err != nil {
		return nil, err
	}
	namespace, err := p.str("namespace", false)
	if err != nil {
		return nil, err
	}
	switch {
	case pkg == "" && nvr == "":
		return nil, p.errorf("parameter package or nvr is required")
	case nvr != "":
		n, err := rpmver.ParseNVR(nvr)
		if err != nil {
			return nil, p.errorf("nvr: %w", err)
		}
		if pkg == "" {
			pkg = n.Name
		}
		if gitref == "" {
			// A build for Fedora NN comes from branch fNN.
			if rel, ok := rpmver.DistTag(n.Release); ok {
				gitref = fmt.Sprintf("f%d", rel)
			}
		}
	}
	if gitref == "" || gitref == "master" {
		// Fedora's dist-git renamed master to rawhide.
		gitref = "rawhide"
	}
	if namespace == "" {
		namespace = "rpms"
	}
	for name, v := range map[string]string{"package": pkg, "gitref": gitref, "namespace": namespace} {
		if strings.ContainsAny(v, "/\\\x00") || v == ".." || v == "." || strings.TrimSpace(v) != v {
			return nil, p.errorf("%s %q is not a valid name", name, v)
		}
	}
	paths, _, err := p.list("path")
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, p.errorf("parameter path is required (a file or a list of files)")
	}
	locals, hasLocal, err := p.list("localpath")
	if err != nil {
		return nil, err
	}
	if hasLocal && len(locals) != len(paths) {
		return nil, p.errorf("localpath has %d entries but path has %d", len(locals), len(paths))
	}
	ignoreMissing, err := p.boolean("ignore_missing", false)
	if err != nil {
		return nil, err
	}
	target, err := p.dir("target_dir", env.WorkDir, env)
	if err != nil {
		return nil, err
	}
	base, err := p.str("baseurl", false)
	if err != nil {
		return nil, err
	}
	if base == "" {
		base = env.Config.DistGit.URL
	}
	base = strings.TrimSuffix(base, "/")
	hc := distgitHTTP(env)
	var files []any
	// Taskotron extension: {package} and {gitref} in a path stand for the
	// package and branch worked out above, so a formula can ask for
	// "{package}.rpmlintrc" knowing only the NVR.
	fill := strings.NewReplacer("{package}", pkg, "{gitref}", gitref)
	for i, rel := range paths {
		rel = fill.Replace(rel)
		clean := path.Clean("/" + rel)[1:]
		if clean == "" || clean != strings.TrimPrefix(rel, "/") {
			return nil, p.errorf("path %q is not a clean relative path", rel)
		}
		local := path.Base(clean)
		if hasLocal {
			local = locals[i]
		}
		dest := filepath.Join(target, filepath.FromSlash(local))
		if !filepath.IsAbs(local) {
			if r, err := filepath.Rel(target, dest); err != nil || strings.HasPrefix(r, "..") {
				return nil, p.errorf("localpath %q leaves target_dir", local)
			}
		} else {
			dest = filepath.Clean(local)
		}
		u := fmt.Sprintf("%s/%s/%s/raw/%s/f/%s", base, url.PathEscape(namespace), url.PathEscape(pkg), url.PathEscape(gitref), escapeSegments(clean))
		err := httpDownload(ctx, hc, u, dest)
		if errors.Is(err, errHTTPNotFound) {
			if ignoreMissing {
				fedoraLog(env).Info("distgit: file missing, ignored", "url", u)
				continue
			}
			return nil, p.errorf("%s: %w", u, err)
		}
		if err != nil {
			return nil, err
		}
		files = append(files, dest)
	}
	if files == nil {
		files = []any{}
	}
	return map[string]any{"downloaded_files": files}, nil
}

func escapeSegments(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

var errHTTPNotFound = errors.New("HTTP 404 Not Found")

// distgitHTTP is the retrying HTTP client dist-git is called with
// (distgit.timeout and distgit.retries).
func distgitHTTP(env *Env) *retryablehttp.Client {
	c := env.Config.DistGit
	return httpclient.New(httpclient.Settings{Service: "dist-git", Timeout: c.Timeout, Retries: configRetries(c.Retries), Log: fedoraLog(env)})
}

// httpDownload fetches u into dest; 404 is errHTTPNotFound, a server that
// stays unusable an infrastructure error.
func httpDownload(ctx context.Context, hc *retryablehttp.Client, u, dest string) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Infra(fmt.Errorf("download %s: after %d retries: %w", u, hc.RetryMax, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errHTTPNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return Infra(fmt.Errorf("download %s: HTTP %s", u, resp.Status))
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, resp.Body); err != nil {
		tmp.Close()
		return Infra(fmt.Errorf("download %s: %w", u, err))
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
