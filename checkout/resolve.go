package checkout

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// resolved is what a mirror's revision named, and the ref files it was
// read from as they were then (refSignature).
type resolved struct {
	signature string
	hash      plumbing.Hash
}

// resolve finds the commit a revision of a mirror names. Opening the
// repository and reading its refs was a tenth of a worker's CPU per job of
// a short task, so a plain name is resolved again only when one of the
// files that could say what it names has changed.
func (c *Checkout) resolve(repoPath, rev string) (plumbing.Hash, error) {
	sig, cacheable := refSignature(repoPath, rev)
	key := repoPath + "\x00" + rev
	if cacheable {
		c.mu.Lock()
		r, ok := c.resolved[key]
		c.mu.Unlock()
		if ok && r.signature == sig {
			return r.hash, nil
		}
	}
	mirror, err := git.PlainOpen(repoPath)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("repository %s: %w", repoPath, err)
	}
	hash, err := mirror.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("repository %s: ref %q: %w (%w)", repoPath, rev, ErrNotFound, err)
	}
	if cacheable {
		c.mu.Lock()
		if c.resolved == nil {
			c.resolved = map[string]resolved{}
		}
		c.resolved[key] = resolved{signature: sig, hash: *hash}
		c.mu.Unlock()
	}
	return *hash, nil
}

// plainRev is a branch, tag or commit name: no ~, ^, @{…} or :path, which
// name commits through others.
var plainRev = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// refSignature describes the files from which git reads what rev names in
// the repository at repoPath: HEAD and the ref it points at, packed-refs
// and each loose ref rev could be (git's lookup order), each by inode,
// size and time. Git writes a ref to a new file and renames it into place,
// so any update changes the signature. ok is false where rev is not a
// plain name or the repository's layout is not the plain one (a .git file).
func refSignature(repoPath, rev string) (sig string, ok bool) {
	if !plainRev.MatchString(rev) || strings.Contains(rev, "..") || strings.HasSuffix(rev, ".lock") {
		return "", false
	}
	gitDir := repoPath
	if fi, err := os.Lstat(filepath.Join(repoPath, ".git")); err == nil {
		if !fi.IsDir() {
			return "", false
		}
		gitDir = filepath.Join(repoPath, ".git")
	}
	files := []string{"HEAD", "packed-refs", rev, "refs/" + rev, "refs/tags/" + rev, "refs/heads/" + rev, "refs/remotes/" + rev, "refs/remotes/" + rev + "/HEAD"}
	if head, err := os.ReadFile(filepath.Join(gitDir, "HEAD")); err == nil {
		if target, symbolic := strings.CutPrefix(strings.TrimSpace(string(head)), "ref: "); symbolic {
			files = append(files, target)
		}
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(gitDir, filepath.FromSlash(f)))
		if err != nil {
			b.WriteString("-;")
			continue
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st == nil {
			return "", false
		}
		fmt.Fprintf(&b, "%d:%d:%d;", st.Ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), true
}
