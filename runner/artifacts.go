package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// progressFile, in an execution's LogDir, names the action its run is in:
// what a run was doing when its worker died, for the next attempt's reason.
const progressFile = "progress.json"

type progress struct {
	Action  string    `json:"action"`
	Index   int       `json:"index"`
	Started time.Time `json:"started"`
}

// Action names the action a running execution is in now, or "".
func (r *Runner) Action(uuid string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current[uuid]
}

// LastAction names the action an execution's run last started, as its
// progress file says, or "": what a run was doing when its worker died.
func (r *Runner) LastAction(uuid string) string {
	if !uuidRe.MatchString(uuid) {
		return ""
	}
	raw, err := os.ReadFile(filepath.Join(r.artifactsRoot(), uuid, LogDir, progressFile))
	if err != nil {
		return ""
	}
	var p progress
	if json.Unmarshal(raw, &p) != nil {
		return ""
	}
	return p.Action
}

// enter records that the run of uuid starts its i-th action (from 0); ""
// says the run is over.
func (r *Runner) enter(uuid, artifacts string, i int, action string) {
	r.mu.Lock()
	if action == "" {
		delete(r.current, uuid)
	} else {
		r.current[uuid] = action
	}
	r.mu.Unlock()
	if r.opts.OnAction != nil {
		r.opts.OnAction(uuid, action)
	}
	if action == "" {
		return
	}
	raw, _ := json.Marshal(progress{Action: action, Index: i, Started: time.Now().UTC()})
	_ = os.WriteFile(filepath.Join(artifacts, LogDir, progressFile), raw, 0o644)
}
