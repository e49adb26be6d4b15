// Package checkout gets task repositories onto the worker: each task is a
// git repository in a local mirror folder; a cache keeps a clone of it that
// is updated by fetch, and an extracted tree per commit that runs use.
// Nothing outside the configured mirrors is ever read.
package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

func init() {
	// Serve file:// fetches in process: no git binary needed on workers.
	client.InstallProtocol("file", server.NewClient(server.DefaultLoader))
}

// Options configure a Checkout.
type Options struct {
	// Mirrors are the folders holding task repositories; <mirror>/<taskname>
	// is tried in order. Only repositories inside them are used.
	Mirrors []string
	// Repos maps a task name to its repository, a path inside a mirror
	// (absolute, or relative to the first mirror).
	Repos map[string]string
	// CacheDir keeps the clones and extracted trees.
	CacheDir string
}

// Checkout fetches tasks. It is safe for concurrent use, also by several
// processes sharing CacheDir.
type Checkout struct {
	mirrors []string // absolute, symlinks resolved
	repos   map[string]string
	cache   string

	mu       sync.Mutex
	locks    map[string]*sync.Mutex
	resolved map[string]resolved // by repository and revision; see resolve
}

var tasknameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// New makes a Checkout. The mirrors must exist.
func New(opts Options) (*Checkout, error) {
	if len(opts.Mirrors) == 0 {
		return nil, errors.New("task checkout: no mirror folder configured (runner.mirror)")
	}
	if opts.CacheDir == "" {
		return nil, errors.New("task checkout: no cache folder")
	}
	c := &Checkout{repos: opts.Repos, locks: map[string]*sync.Mutex{}}
	for _, m := range opts.Mirrors {
		abs, err := filepath.Abs(m)
		if err != nil {
			return nil, fmt.Errorf("task mirror %s: %w", m, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("task mirror %s: %w", m, err)
		}
		c.mirrors = append(c.mirrors, real)
	}
	cache, err := filepath.Abs(opts.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("task cache %s: %w", opts.CacheDir, err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("task cache: %w", err)
	}
	c.cache = cache
	return c, nil
}

// ErrNotAllowed is returned for a repository outside the configured mirrors
// (or a task name that could lead outside them).
var ErrNotAllowed = errors.New("repository is outside the configured task mirrors")

// ErrNotFound is returned for a task, repository or ref that does not exist.
// Unlike a failing fetch, trying again will not help.
var ErrNotFound = errors.New("not found")

// RepoPath is where the task's repository is: its entry in Repos, or the
// first mirror that has a folder of that name.
func (c *Checkout) RepoPath(taskname string) (string, error) {
	if !tasknameRe.MatchString(taskname) {
		return "", fmt.Errorf("task name %q: use letters, digits, '.', '_' and '-' only: %w", taskname, ErrNotAllowed)
	}
	if p, ok := c.repos[taskname]; ok {
		return c.allowed(p)
	}
	for _, m := range c.mirrors {
		p := filepath.Join(m, taskname)
		if _, err := os.Stat(p); err == nil {
			return c.allowed(p)
		}
	}
	return "", fmt.Errorf("task %q: no repository %s in the task mirror %s: %w", taskname, taskname, strings.Join(c.mirrors, ", "), ErrNotFound)
}

// allowed resolves p (relative paths are inside the first mirror) and
// checks it is inside a mirror.
func (c *Checkout) allowed(p string) (string, error) {
	if strings.Contains(p, "://") {
		return "", fmt.Errorf("%s: %w (only local mirror folders are used)", p, ErrNotAllowed)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.mirrors[0], p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("repository %s: %w", p, ErrNotFound)
		}
		return "", fmt.Errorf("repository %s: %w", p, err)
	}
	for _, m := range c.mirrors {
		rel, err := filepath.Rel(m, real)
		if err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return real, nil
		}
	}
	return "", fmt.Errorf("%s: %w", p, ErrNotAllowed)
}

// Origin is what the namespace allowlist matches a task against: its
// repository's path in the mirror.
func (c *Checkout) Origin(taskname, repo string) string {
	var p string
	var err error
	if repo != "" {
		p, err = c.allowed(repo)
	} else {
		p, err = c.RepoPath(taskname)
	}
	if err != nil {
		return ""
	}
	return p + "/"
}

// Get returns a folder holding the task's files at ref (a branch, tag or
// commit; empty means the repository's HEAD). Runs must not write there:
// the folder is shared by every run of that commit.
func (c *Checkout) Get(ctx context.Context, taskname, ref string) (string, error) {
	repo, err := c.RepoPath(taskname)
	if err != nil {
		return "", err
	}
	return c.get(ctx, repo, ref)
}

// GetRepo is Get for a repository named by path (a job's git_repo), which
// must be inside a mirror.
func (c *Checkout) GetRepo(ctx context.Context, repo, ref string) (string, error) {
	p, err := c.allowed(repo)
	if err != nil {
		return "", err
	}
	return c.get(ctx, p, ref)
}

func (c *Checkout) get(ctx context.Context, repoPath, ref string) (string, error) {
	key := cacheKey(repoPath)
	rev := ref
	if rev == "" {
		rev = "HEAD"
	}
	found, err := c.resolve(repoPath, rev)
	if err != nil {
		return "", err
	}
	hash := &found
	tree := filepath.Join(c.cache, key, "trees", hash.String())
	if _, err := os.Stat(tree); err == nil {
		// Its time says when it was last used: pruning spares it.
		now := time.Now()
		_ = os.Chtimes(tree, now, now)
		return tree, nil
	}

	unlock, err := c.lock(key)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tree); err == nil {
		return tree, nil
	}
	clone, err := c.fetch(ctx, key, repoPath, *hash)
	if err != nil {
		return "", err
	}
	commit, err := clone.CommitObject(*hash)
	if err != nil {
		return "", fmt.Errorf("repository %s: commit %s: %w", repoPath, hash, err)
	}
	if err := extract(commit, tree); err != nil {
		return "", fmt.Errorf("repository %s: checking out %s: %w", repoPath, hash, err)
	}
	pruneTrees(filepath.Dir(tree), tree)
	return tree, nil
}

// Extracted trees of one repository that are kept: the KeepTrees most
// recently used, and any used within TreeMaxAge, so that a run that was
// just handed a tree still finds it while it copies it.
const (
	KeepTrees  = 5
	TreeMaxAge = time.Hour
)

// pruneTrees removes the extracted trees in dir beyond what KeepTrees and
// TreeMaxAge keep; keep is never removed. It runs under the repository's
// lock, after a new tree was extracted: a cache of a busy task stays small.
func pruneTrees(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type tree struct {
		path string
		used time.Time
	}
	var trees []tree
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() || p == keep || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			trees = append(trees, tree{p, fi.ModTime()})
		}
	}
	sort.Slice(trees, func(i, j int) bool { return trees[i].used.After(trees[j].used) })
	for i, t := range trees {
		if i+1 < KeepTrees || time.Since(t.used) < TreeMaxAge {
			continue
		}
		_ = os.RemoveAll(t.path)
	}
}

// fetch updates the cached clone of repoPath until it has the commit.
func (c *Checkout) fetch(ctx context.Context, key, repoPath string, want plumbing.Hash) (*git.Repository, error) {
	dir := filepath.Join(c.cache, key, "repo.git")
	url := repoPath
	if fi, err := os.Stat(filepath.Join(repoPath, ".git")); err == nil && fi.IsDir() {
		url = filepath.Join(repoPath, ".git") // the in-process server reads git folders
	}
	clone, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		clone, err = git.PlainInit(dir, true)
		if err == nil {
			_, err = clone.CreateRemote(&gitconfig.RemoteConfig{
				Name: "origin",
				URLs: []string{url},
				Fetch: []gitconfig.RefSpec{
					"+refs/heads/*:refs/heads/*",
					"+refs/tags/*:refs/tags/*",
				},
			})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("task cache %s: %w", dir, err)
	}
	if _, err := clone.CommitObject(want); err == nil {
		return clone, nil
	}
	err = clone.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", Force: true, Tags: git.AllTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, fmt.Errorf("fetching %s: %w", repoPath, err)
	}
	if _, err := clone.CommitObject(want); err != nil {
		// A commit no branch or tag reaches: fetch it by name.
		err = clone.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []gitconfig.RefSpec{gitconfig.RefSpec(want.String() + ":refs/taskotron/" + want.String())}})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, fmt.Errorf("fetching %s from %s: %w", want, repoPath, err)
		}
	}
	return clone, nil
}

// extract writes the commit's files into dir, through a temporary folder
// renamed into place, so a tree that exists is always complete.
func extract(commit *object.Commit, dir string) error {
	tree, err := commit.Tree()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = tree.Files().ForEach(func(f *object.File) error {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("file %q leaves the repository", f.Name)
		}
		dst := filepath.Join(tmp, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return err
			}
			// A link may only point inside the task.
			if filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(f.Name), target)) {
				return fmt.Errorf("symlink %q points outside the task (%s)", f.Name, target)
			}
			return os.Symlink(target, dst)
		case filemode.Submodule:
			return nil
		}
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return nil // another process finished first
		}
		return err
	}
	return nil
}

// lock serialises work on one cached repository within this process and,
// through flock, with other processes sharing the cache.
func (c *Checkout) lock(key string) (func(), error) {
	c.mu.Lock()
	m, ok := c.locks[key]
	if !ok {
		m = &sync.Mutex{}
		c.locks[key] = m
	}
	c.mu.Unlock()
	m.Lock()
	if err := os.MkdirAll(filepath.Join(c.cache, key), 0o755); err != nil {
		m.Unlock()
		return nil, fmt.Errorf("task cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.cache, key, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		m.Unlock()
		return nil, fmt.Errorf("task cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		m.Unlock()
		return nil, fmt.Errorf("task cache lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		m.Unlock()
	}, nil
}

// cacheKey names a repository's cache folder: readable, and unique per path.
func cacheKey(repoPath string) string {
	sum := sha256.Sum256([]byte(repoPath))
	base := regexp.MustCompile(`[^A-Za-z0-9._-]`).ReplaceAllString(filepath.Base(repoPath), "_")
	return base + "-" + hex.EncodeToString(sum[:6])
}
