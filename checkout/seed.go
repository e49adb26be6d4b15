package checkout

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Seed makes every folder tasksDir/<name>/ a git repository mirrorDir/<name>
// holding the same files, committing only when the content changed. It is
// how the embedded setup builds its mirror from the example tasks.
func Seed(tasksDir, mirrorDir string) error {
	entries, err := os.ReadDir(tasksDir)
	if err != nil {
		return fmt.Errorf("tasks folder: %w", err)
	}
	if err := os.MkdirAll(mirrorDir, 0o755); err != nil {
		return fmt.Errorf("task mirror: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !tasknameRe.MatchString(e.Name()) {
			continue
		}
		if err := seedOne(filepath.Join(tasksDir, e.Name()), filepath.Join(mirrorDir, e.Name())); err != nil {
			return fmt.Errorf("task %s: %w", e.Name(), err)
		}
	}
	return nil
}

func seedOne(src, dst string) error {
	repo, err := git.PlainOpen(dst)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(dst, false)
	}
	if err != nil {
		return err
	}
	if err := syncTree(src, dst); err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return err
	}
	status, err := wt.Status()
	if err != nil {
		return err
	}
	if status.IsClean() {
		return nil
	}
	sig := &object.Signature{Name: "taskotron", Email: "taskotron@localhost", When: time.Now()}
	_, err = wt.Commit("Update from "+src, &git.CommitOptions{All: true, Author: sig, Committer: sig})
	return err
}

// syncTree makes dst (apart from .git) hold exactly the files of src.
func syncTree(src, dst string) error {
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if rel == "." {
			return nil
		}
		want[rel] = true
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if old, err := os.Readlink(target); err == nil && old == link {
				return nil
			}
			os.RemoveAll(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			perm := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				perm = 0o755
			}
			if old, err := os.ReadFile(target); err == nil && bytes.Equal(old, data) {
				if fi, err := os.Lstat(target); err == nil && fi.Mode().Perm() == perm {
					return nil
				}
			}
			os.RemoveAll(target)
			return os.WriteFile(target, data, perm)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var stale []string
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() && rel == ".git" {
			return filepath.SkipDir
		}
		if !want[rel] {
			stale = append(stale, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
