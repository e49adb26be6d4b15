// Package koji talks to a Koji build system: the hub's XML-RPC API
// (getBuild, listRPMs, listTagged, getTag) and the packages file tree, with
// retries, backoff, checksum verification and a download cache.
package koji

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/httpclient"
	"github.com/taskotron-go/taskotron/koji/xmlrpc"
)

// Build states as Koji numbers them.
const (
	StateBuilding = 0
	StateComplete = 1
	StateDeleted  = 2
	StateFailed   = 3
	StateCanceled = 4
)

// Build is what getBuild and listTagged return about one build.
type Build struct {
	ID      int64
	Name    string
	Version string
	Release string
	Epoch   *int64
	NVR     string
	State   int
	TagName string
	// Volume is the storage volume; builds off the DEFAULT one live below
	// <topurl>/vol/<volume>/packages.
	Volume string
}

// RPM is one file of a build as listRPMs returns it.
type RPM struct {
	ID          int64
	BuildID     int64
	Name        string
	Version     string
	Release     string
	Epoch       *int64
	Arch        string
	Size        int64
	PayloadHash string
}

// NVRA is the RPM's file name stem.
func (r RPM) NVRA() string { return r.Name + "-" + r.Version + "-" + r.Release + "." + r.Arch }

// Tag is what getTag returns.
type Tag struct {
	ID   int64
	Name string
}

// ErrNotFound is returned when the hub knows no such build or tag.
var ErrNotFound = errors.New("not found")

// UnavailableError means the hub or the package server could not be used
// even after retries: an infrastructure failure, not the package's fault.
type UnavailableError struct {
	What string
	Err  error
}

func (e *UnavailableError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Options tune a Client. Zero values get sensible defaults.
type Options struct {
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration
	// Retries is how many times a failed request is retried.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff.
	RetryWaitMin, RetryWaitMax time.Duration
	// CacheDir keeps verified downloads; empty turns the cache off.
	CacheDir string
	Log      *slog.Logger
}

// Client is a Koji hub client. It is safe for concurrent use.
type Client struct {
	hubURL, pkgURL string
	http           *retryablehttp.Client
	retries        int
	cacheDir       string
	log            *slog.Logger
}

// New makes a client for the hub at hubURL (…/kojihub) whose packages are
// served below pkgURL (…/packages).
func New(hubURL, pkgURL string, o Options) *Client {
	rc := httpclient.New(httpclient.Settings{Service: "Koji", Timeout: o.Timeout, Retries: o.Retries,
		RetryWaitMin: o.RetryWaitMin, RetryWaitMax: o.RetryWaitMax, Log: o.Log})
	o.Retries = rc.RetryMax
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		hubURL:   strings.TrimSuffix(hubURL, "/"),
		pkgURL:   strings.TrimSuffix(pkgURL, "/"),
		http:     rc,
		retries:  o.Retries,
		cacheDir: o.CacheDir,
		log:      o.Log,
	}
}

// HubURL is the hub's XML-RPC endpoint.
func (c *Client) HubURL() string { return c.hubURL }

// Call invokes a hub method. kwargs go as Koji expects keyword arguments: a
// final struct marked with __starstar.
func (c *Client) Call(ctx context.Context, method string, args []any, kwargs map[string]any) (any, error) {
	params := append([]any(nil), args...)
	if len(kwargs) > 0 {
		kw := map[string]any{"__starstar": true}
		for k, v := range kwargs {
			kw[k] = v
		}
		params = append(params, kw)
	}
	var body bytes.Buffer
	if err := xmlrpc.EncodeCall(&body, method, params); err != nil {
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.hubURL, body.Bytes())
	if err != nil {
		return nil, fmt.Errorf("koji %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "text/xml")
	what := fmt.Sprintf("koji hub %s %s", c.hubURL, method)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnavailableError{What: what, Err: fmt.Errorf("after %d retries: %w", c.retries, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &UnavailableError{What: what, Err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	v, err := xmlrpc.DecodeResponse(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		var f *xmlrpc.Fault
		if errors.As(err, &f) {
			return nil, fmt.Errorf("koji %s: %w", method, err)
		}
		return nil, &UnavailableError{What: what, Err: err}
	}
	return v, nil
}

// GetBuild looks a build up by NVR or numeric id.
func (c *Client) GetBuild(ctx context.Context, build any) (Build, error) {
	v, err := c.Call(ctx, "getBuild", []any{build}, nil)
	if err != nil {
		return Build{}, err
	}
	if v == nil {
		return Build{}, fmt.Errorf("koji build %v: %w", build, ErrNotFound)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Build{}, &UnavailableError{What: "koji getBuild", Err: fmt.Errorf("answer is a %T, not a struct", v)}
	}
	return buildFrom(m), nil
}

// ListRPMs lists a build's RPMs, only those of arches when that is not nil.
func (c *Client) ListRPMs(ctx context.Context, buildID int64, arches []string) ([]RPM, error) {
	kw := map[string]any{"buildID": buildID}
	if arches != nil {
		kw["arches"] = arches
	}
	v, err := c.Call(ctx, "listRPMs", nil, kw)
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		return nil, &UnavailableError{What: "koji listRPMs", Err: fmt.Errorf("answer is a %T, not an array", v)}
	}
	rpms := make([]RPM, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		rpms = append(rpms, RPM{
			ID: num(m["id"]), BuildID: num(m["build_id"]), Name: str(m["name"]), Version: str(m["version"]),
			Release: str(m["release"]), Epoch: optNum(m["epoch"]), Arch: str(m["arch"]), Size: num(m["size"]),
			PayloadHash: str(m["payloadhash"]),
		})
	}
	return rpms, nil
}

// ListTagged lists the builds in a tag; latest keeps the newest per
// package; pkg, when set, keeps that package only.
func (c *Client) ListTagged(ctx context.Context, tag string, latest, inherit bool, pkg string) ([]Build, error) {
	kw := map[string]any{}
	if latest {
		kw["latest"] = true
	}
	if inherit {
		kw["inherit"] = true
	}
	if pkg != "" {
		kw["package"] = pkg
	}
	v, err := c.Call(ctx, "listTagged", []any{tag}, kw)
	if err != nil {
		var f *xmlrpc.Fault
		if errors.As(err, &f) && strings.Contains(f.String, "No such tagInfo") {
			return nil, fmt.Errorf("koji tag %s: %w", tag, ErrNotFound)
		}
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		return nil, &UnavailableError{What: "koji listTagged", Err: fmt.Errorf("answer is a %T, not an array", v)}
	}
	builds := make([]Build, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		builds = append(builds, buildFrom(m))
	}
	return builds, nil
}

// GetTag looks a tag up by name.
func (c *Client) GetTag(ctx context.Context, tag string) (Tag, error) {
	v, err := c.Call(ctx, "getTag", []any{tag}, nil)
	if err != nil {
		return Tag{}, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Tag{}, fmt.Errorf("koji tag %s: %w", tag, ErrNotFound)
	}
	return Tag{ID: num(m["id"]), Name: str(m["name"])}, nil
}

func buildFrom(m map[string]any) Build {
	b := Build{
		ID: num(m["build_id"]), Name: str(m["name"]), Version: str(m["version"]), Release: str(m["release"]),
		Epoch: optNum(m["epoch"]), NVR: str(m["nvr"]), State: int(num(m["state"])), TagName: str(m["tag_name"]),
		Volume: str(m["volume_name"]),
	}
	if b.ID == 0 {
		b.ID = num(m["id"])
	}
	if b.Name == "" {
		b.Name = str(m["package_name"])
	}
	if b.NVR == "" {
		b.NVR = b.Name + "-" + b.Version + "-" + b.Release
	}
	return b
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

func optNum(v any) *int64 {
	if n, ok := v.(int64); ok {
		return &n
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// RPMURL is where the packages tree serves an RPM of build b.
func (c *Client) RPMURL(b Build, r RPM) string {
	return c.packages(b) + "/" + pathEscape(b.Name, b.Version, b.Release, r.Arch, r.NVRA()+".rpm")
}

// BuildLogURL is where the packages tree serves a build's log for arch.
func (c *Client) BuildLogURL(b Build, arch string) string {
	return c.packages(b) + "/" + pathEscape(b.Name, b.Version, b.Release, "data", "logs", arch, "build.log")
}

// packages is the packages tree of b's volume (Koji's pathinfo layout).
func (c *Client) packages(b Build) string {
	if b.Volume == "" || b.Volume == "DEFAULT" {
		return c.pkgURL
	}
	top, ok := strings.CutSuffix(c.pkgURL, "/packages")
	if !ok {
		return c.pkgURL
	}
	return top + "/vol/" + url.PathEscape(b.Volume) + "/packages"
}

func pathEscape(parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// safeName refuses names that would leave the target folder.
func safeName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("unsafe file name %q", name)
	}
	return nil
}

// DownloadRPM fetches one RPM of build b into dir, verifying its size and
// its header+payload MD5 against Koji's payloadhash. A verified copy in
// the cache is used instead of the network. A checksum mismatch is retried;
// if it persists the error is an *UnavailableError wrapping *ChecksumError.
func (c *Client) DownloadRPM(ctx context.Context, b Build, r RPM, dir string) (string, error) {
	name := r.NVRA() + ".rpm"
	if err := safeName(name); err != nil {
		return "", fmt.Errorf("koji rpm from build %s: %w", b.NVR, err)
	}
	if err := safeName(b.Name); err != nil {
		return "", err
	}
	dest := filepath.Join(dir, name)
	verify := func(path string) error {
		if r.Size > 0 {
			if fi, err := os.Stat(path); err == nil && fi.Size() != r.Size {
				return &ChecksumError{Path: path, Want: fmt.Sprintf("%d bytes", r.Size), Got: fmt.Sprintf("%d bytes", fi.Size())}
			}
		}
		_, err := VerifyRPM(path, r.PayloadHash)
		return err
	}
	var cached string
	if c.cacheDir != "" {
		cached = filepath.Join(c.cacheDir, b.Name, b.Version, b.Release, r.Arch, name)
		for _, p := range []string{b.Version, b.Release, r.Arch} {
			if err := safeName(p); err != nil {
				cached = ""
			}
		}
		if cached != "" && verify(cached) == nil {
			if err := linkOrCopy(cached, dest); err == nil {
				c.log.Debug("koji download from cache", "rpm", name)
				return dest, nil
			}
		}
	}
	u := c.RPMURL(b, r)
	var last error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return "", err
			}
		}
		if err := c.fetch(ctx, u, dest); err != nil {
			return "", err
		}
		last = verify(dest)
		if last == nil {
			break
		}
		var ce *ChecksumError
		if !errors.As(last, &ce) {
			last = &ChecksumError{Path: dest, Want: r.PayloadHash, Got: last.Error()}
		}
		c.log.Warn("koji download failed verification", "url", u, "attempt", attempt+1, "err", last)
	}
	if last != nil {
		os.Remove(dest)
		return "", &UnavailableError{What: "koji download " + u, Err: last}
	}
	if cached != "" {
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err == nil {
			if err := linkOrCopy(dest, cached); err != nil {
				c.log.Warn("koji download cache", "err", err)
			}
		}
	}
	return dest, nil
}

func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 6)
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ErrHTTPNotFound is a 404 from the package server.
var ErrHTTPNotFound = errors.New("HTTP 404 Not Found")

// Fetch downloads url to dest (through a temporary file in dest's folder),
// retrying with backoff. A 404 is returned as ErrHTTPNotFound; anything
// else that keeps failing is an *UnavailableError.
func (c *Client) Fetch(ctx context.Context, u, dest string) error { return c.fetch(ctx, u, dest) }

func (c *Client) fetch(ctx context.Context, u, dest string) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnavailableError{What: "download " + u, Err: fmt.Errorf("after %d retries: %w", c.retries, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("download %s: %w", u, ErrHTTPNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return &UnavailableError{What: "download " + u, Err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".part-*")
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, resp.Body); err != nil {
		tmp.Close()
		return &UnavailableError{What: "download " + u, Err: err}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}
