package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// openLogDir makes the runner's folder (LogDir) in an execution's
// artifacts and opens it. The runner's own files are made through it, so a
// task that swaps the folder for a symlink to elsewhere sends none there.
func openLogDir(artifacts string) (*os.Root, error) {
	if err := os.MkdirAll(filepath.Join(artifacts, LogDir), 0o755); err != nil {
		return nil, err
	}
	return os.OpenRoot(filepath.Join(artifacts, LogDir))
}

// createIn makes name in dir a new, empty file and opens it for writing.
// What is there already (a symlink the task planted where the runner
// writes its next log) is removed, never followed: O_CREAT|O_EXCL fails on
// a symlink instead of opening its target.
func createIn(dir *os.Root, name string) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
		if err == nil || !errors.Is(err, fs.ErrExist) || try == 3 {
			return f, err
		}
		if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
}

// moveIn moves the file at path (outside dir, the runner's own) to name in
// dir, replacing what is there (a symlink planted there is replaced, not
// followed, as rename never follows the name it replaces), and makes it
// readable to all as the runner's other files are. On another filesystem
// it copies the file instead. Moving rather than copying keeps a results
// file of a hundred megabytes from being written to the disk twice.
func moveIn(dir *os.Root, path, name string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.Chmod(abs, 0o644); err != nil {
		return err
	}
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	conn, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if err := conn.Control(func(fd uintptr) {
		// An absolute old path ignores the first directory.
		rerr = syscall.Renameat(int(fd), abs, int(fd), name)
	}); err != nil {
		return err
	}
	if rerr == nil {
		return nil
	}
	if !errors.Is(rerr, syscall.EXDEV) {
		return &os.LinkError{Op: "rename", Old: abs, New: filepath.Join(dir.Name(), name), Err: rerr}
	}
	f, err := createIn(dir, name)
	if err != nil {
		return err
	}
	return errors.Join(copyFile(abs, f), f.Close())
}

// copyFile copies the file at path to w.
func copyFile(path string, w io.Writer) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = io.Copy(w, in)
	return err
}

// writeFileIn replaces name in dir with a file holding data: written under
// another name and renamed over it, which replaces a symlink rather than
// writing through it, and never shows a half-written file.
func writeFileIn(dir *os.Root, name string, data []byte) error {
	tmp := "." + name + ".new"
	f, err := createIn(dir, tmp)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Close()); err != nil {
		dir.Remove(tmp)
		return err
	}
	return dir.Rename(tmp, name)
}

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
	// The task could have put a symlink there: it is followed only
	// inside the execution's artifacts.
	root, err := os.OpenRoot(filepath.Join(r.artifactsRoot(), uuid))
	if err != nil {
		return ""
	}
	defer root.Close()
	raw, err := root.ReadFile(filepath.Join(LogDir, progressFile))
	if err != nil {
		return ""
	}
	var p progress
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&p) != nil {
		return ""
	}
	return p.Action
}

// enter records that the run of uuid starts an action, or, with "", that
// it is over.
func (r *Runner) enter(uuid, action string) {
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
}

// enter records that the run starts its i-th action (from 0), in memory
// and in its progress file. The file is made once, before the first
// action, and written over in place through its handle: a symlink the
// task plants there later is never followed, and no file is made per
// action. LastAction reads the first JSON value, so a shorter record over
// a longer one reads right even before the truncation.
func (x *run) enter(i int, action string) {
	x.r.enter(x.in.UUID, action)
	raw, _ := json.Marshal(progress{Action: action, Index: i, Started: time.Now().UTC()})
	if x.progressFile == nil {
		f, err := createIn(x.logDir, progressFile)
		if err != nil {
			x.log.Warn("progress file not written", "error", err)
			return
		}
		x.progressFile = f
	}
	if _, err := x.progressFile.WriteAt(raw, 0); err == nil {
		_ = x.progressFile.Truncate(int64(len(raw)))
	}
}

func (x *run) closeProgress() {
	if x.progressFile != nil {
		x.progressFile.Close()
	}
}
