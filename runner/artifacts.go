package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/taskotron-go/taskotron/contract"
)

// ArtifactPath resolves a result's artifact (relative to the execution's
// artifacts folder, or absolute inside it) to a path relative to that
// folder. It fails for a path that leaves the folder, lexically or through
// a symlink, and for one that does not exist.
func ArtifactPath(artifactsDir, artifact string) (string, error) {
	root, err := filepath.EvalSymlinks(artifactsDir)
	if err != nil {
		return "", fmt.Errorf("artifacts folder: %w", err)
	}
	p := artifact
	if !filepath.IsAbs(p) {
		p = filepath.Join(artifactsDir, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("artifact %q does not exist", artifact)
		}
		return "", fmt.Errorf("artifact %q: %w", artifact, err)
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("artifact %q is outside the artifacts folder", artifact)
	}
	return filepath.ToSlash(rel), nil
}

// sanitizeArtifacts rewrites each result's artifact relative to the
// artifacts folder. One that does not resolve inside it is dropped (the
// result then points at the folder itself, as libtaskotron did) and the
// reason goes to the runner log.
func sanitizeArtifacts(rs []contract.Result, dir string, log *slog.Logger) []contract.Result {
	for i := range rs {
		if rs[i].Artifact == "" {
			continue
		}
		rel, err := ArtifactPath(dir, rs[i].Artifact)
		if err != nil {
			log.Warn("result artifact dropped", "checkname", rs[i].CheckName, "error", err)
			rs[i].Artifact = ""
			continue
		}
		if rel == "." {
			rel = ""
		}
		rs[i].Artifact = rel
	}
	return rs
}

// removeOutsideLinks deletes the symlinks in an execution's artifacts that
// lead out of them (or nowhere): the folder is published, and a server
// following such a link would hand out files of its own host.
func removeOutsideLinks(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		if _, err := ArtifactPath(dir, p); err != nil {
			target, _ := os.Readlink(p)
			if rerr := os.Remove(p); rerr == nil {
				log.Warn("symlink in the artifacts removed: it leads out of them", "path", p, "target", target)
			}
		}
		return nil
	})
}

var actionStartRe = regexp.MustCompile(`msg="action starting"[^\n]*? action=("(?:[^"\\]|\\.)*"|\S+)`)

// LastAction names the action an execution's runner log last started, or
// "": what a run was doing when its worker died.
func (r *Runner) LastAction(uuid string) string {
	if !uuidRe.MatchString(uuid) {
		return ""
	}
	f, err := os.Open(filepath.Join(r.artifactsRoot(), uuid, LogDir, "taskotron.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		f.Seek(fi.Size()-tail, io.SeekStart)
	}
	data, err := io.ReadAll(io.LimitReader(f, tail))
	if err != nil {
		return ""
	}
	all := actionStartRe.FindAllSubmatch(data, -1)
	if len(all) == 0 {
		return ""
	}
	name := string(all[len(all)-1][1])
	if unq, err := strconv.Unquote(name); err == nil {
		name = unq
	}
	return name
}
