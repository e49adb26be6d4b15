package trigger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/taskotron-go/taskotron/capped"
	"gopkg.in/yaml.v3"
)

// formulaName is the file a task is found by (reference §2.1: dist-git
// tasks must name their formula runtask.yml).
const formulaName = "runtask.yml"

type foundTask struct {
	name, repo, branch, path string
}

// discover clones repo at branch (or fallback_branch when branch is empty
// or missing) and lists the tasks in it: every runtask.yml, at the top only
// unless recursive.
func discover(ctx context.Context, d map[string]any, cacheDir string, rewrite map[string]string, log *slog.Logger) ([]foundTask, error) {
	repo, _ := d["repo"].(string)
	branch, _ := d["branch"].(string)
	fallback, _ := d["fallback_branch"].(string)
	recursive, _ := d["recursive"].(bool)
	if err := safeRef("repo", repo); err != nil {
		return nil, fmt.Errorf("%w: discover: %v", ErrMalformed, err)
	}
	for _, b := range []string{branch, fallback} {
		if b != "" {
			if err := safeRef("branch", b); err != nil {
				return nil, fmt.Errorf("%w: discover: %v", ErrMalformed, err)
			}
		}
	}
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("discover: %w", err)
		}
	}
	dir, err := os.MkdirTemp(cacheDir, "discover-")
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	defer os.RemoveAll(dir)

	url := repo
	best := ""
	for from, to := range rewrite {
		if strings.HasPrefix(repo, from) && len(from) > len(best) {
			best, url = from, to+strings.TrimPrefix(repo, from)
		}
	}
	var used string
	for _, b := range []string{branch, fallback} {
		if b == "" {
			continue
		}
		_, err = git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{
			URL:           url,
			ReferenceName: plumbing.NewBranchReferenceName(b),
			SingleBranch:  true,
			Tags:          git.NoTags,
		})
		if err == nil {
			used = b
			break
		}
		if errors.Is(err, transport.ErrRepositoryNotFound) {
			log.Warn("discover: repo not found, no tasks from it", "repo", repo)
			return nil, nil
		}
		if !isMissingBranch(err) {
			return nil, fmt.Errorf("discover: clone %s branch %s: %w", repo, b, err)
		}
		log.Debug("discover: branch not found", "repo", repo, "branch", b)
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("discover: %w", err)
		}
	}
	if used == "" {
		log.Info("discover: neither branch exists, no tasks", "repo", repo, "branch", branch, "fallback_branch", fallback)
		return nil, nil
	}
	var found []foundTask
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if e.IsDir() {
			if e.Name() == ".git" || (!recursive && rel != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Name() != formulaName || !e.Type().IsRegular() {
			return nil
		}
		taskDir := filepath.Dir(rel)
		found = append(found, foundTask{name: formulaTaskName(path, taskDir, repo), repo: repo, branch: used, path: taskDir})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("discover: %s: %w", repo, err)
	}
	return found, nil
}

// formulaTaskName reads the formula's name:, falling back to the folder.
func formulaTaskName(path, taskDir, repo string) string {
	raw, err := capped.ReadFile(path, 1<<20) // a formula from a repo anyone may push to
	if err == nil {
		var f struct {
			Name string `yaml:"name"`
		}
		if yaml.Unmarshal(raw, &f) == nil && f.Name != "" && safeRef("name", f.Name) == nil {
			return f.Name
		}
	}
	if taskDir != "." {
		return filepath.Base(taskDir)
	}
	return filepath.Base(strings.TrimSuffix(repo, ".git"))
}

func isMissingBranch(err error) bool {
	return errors.Is(err, plumbing.ErrReferenceNotFound) ||
		strings.Contains(err.Error(), "couldn't find remote ref") ||
		strings.Contains(err.Error(), "reference not found")
}

// safeRef rejects templated values that could turn into options or escape
// a path: they come from messages.
func safeRef(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n\r\x00") {
		return fmt.Errorf("%s %q is not allowed", what, s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Errorf("%s %q is not allowed", what, s)
		}
	}
	return nil
}
