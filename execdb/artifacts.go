package execdb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/taskotron-go/taskotron/redact"
)

// Artifacts travel from a worker to the central server at the end of a run
// as one gzipped tar of regular files and folders (no links: a task's link
// to a worker file must not carry the file away), at most a ceiling in all.

// ErrArtifactsTooLarge is an artifacts tree over the ceiling.
var ErrArtifactsTooLarge = errors.New("artifacts larger than the ceiling")

// UploadArtifacts sends the tree at dir as the artifacts of uuid, at most
// max bytes of files (the rest is not sent: the upload fails whole).
func (c *Client) UploadArtifacts(ctx context.Context, uuid, dir string, max int64) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, dir, max)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/executions/"+url.PathEscape(uuid)+"/artifacts", pr)
	if err != nil {
		pr.Close()
		return err
	}
	req.Header.Set("Content-Type", "application/gzip")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A streamed body cannot be retried: one try, the caller tries again.
	resp, err := c.follow.HTTPClient.Do(req)
	pr.Close()
	if err != nil {
		return fmt.Errorf("executions server %s: uploading the artifacts of %s: %w", redact.URL(c.base), uuid, redact.URLError(err, c.base))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return &StatusError{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
	}
	return nil
}

func writeTar(w io.Writer, dir string, max int64) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755})
		case !d.Type().IsRegular():
			return nil // links and devices stay behind
		}
		fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil // replaced by a link meanwhile, or gone
		}
		f := os.NewFile(uintptr(fd), p)
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if total += fi.Size(); total > max {
			return fmt.Errorf("%w (%d bytes)", ErrArtifactsTooLarge, max)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// putArtifacts takes a run's artifacts tree and puts it, whole, in place of
// what the execution had: extracted beside it first, then renamed.
func (h *Handler) putArtifacts(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	if h.opts.ArtifactsDir == "" {
		fail(w, http.StatusNotImplemented, "this server keeps no artifacts")
		return
	}
	uuid := r.PathValue("uuid")
	if !logNameRe.MatchString(uuid) {
		fail(w, http.StatusBadRequest, "uuid %q: use letters, digits, '.', '_' and '-'", uuid)
		return
	}
	final := filepath.Join(h.opts.ArtifactsDir, uuid)
	// A fresh server has no artifacts folder before its first upload.
	if err := os.MkdirAll(h.opts.ArtifactsDir, 0o755); err != nil {
		h.serverError(w, "artifacts", err)
		return
	}
	tmp, err := os.MkdirTemp(h.opts.ArtifactsDir, "."+uuid+".upload-")
	if err != nil {
		h.serverError(w, "artifacts", err)
		return
	}
	defer os.RemoveAll(tmp)
	if err := extract(r.Body, tmp, h.opts.MaxArtifacts); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrArtifactsTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		fail(w, code, "artifacts of %s: %s", uuid, oneLine(err.Error()))
		return
	}
	old := final + ".old"
	os.RemoveAll(old)
	os.Rename(final, old)
	if err := os.Rename(tmp, final); err != nil {
		os.Rename(old, final)
		h.serverError(w, "artifacts", err)
		return
	}
	os.RemoveAll(old)
	writeJSON(w, http.StatusOK, map[string]string{"artifacts": "/artifacts/" + uuid + "/"})
}

// extract unpacks a gzipped tar of regular files and folders into dir:
// names stay inside it, at most max bytes in all.
func extract(r io.Reader, dir string, max int64) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzipped tar: %w", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := path.Clean(hdr.Name)
		if name == "." || strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("tar entry %q: outside the artifacts folder", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if total += hdr.Size; total > max {
				return fmt.Errorf("%w (%d bytes)", ErrArtifactsTooLarge, max)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			// O_EXCL and no links: nothing in the tree can point outside.
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			if _, err := io.CopyN(f, tr, hdr.Size); err != nil {
				f.Close()
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar entry %q: only files and folders are taken", hdr.Name)
		}
	}
}
