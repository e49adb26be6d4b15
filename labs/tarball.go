package labs

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Trees travel between the central server and a lab as gzipped tars of
// regular files (with their executable bit) and folders: a task's tree from
// the mirror, a run's artifacts back. Links stay behind, so that a task's
// link to a lab's file cannot carry the file away, and names stay inside
// the folder they are unpacked into.

// ErrTooLarge is a tree over the ceiling.
var ErrTooLarge = errors.New("larger than the ceiling")

// writeTree writes the tree at dir, at most max bytes of files.
func writeTree(w io.Writer, dir string, max int64) error {
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
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755})
		case !d.Type().IsRegular():
			return nil
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
			return fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: mode, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
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

// readTree unpacks a gzipped tar of files and folders into dir (which
// must exist), at most max bytes in all.
func readTree(r io.Reader, dir string, max int64) error {
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
		if name == "." || name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("tar entry %q: outside the folder", clip(hdr.Name))
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if hdr.Size < 0 {
				return fmt.Errorf("tar entry %q: bad size", clip(hdr.Name))
			}
			if total += hdr.Size; total > max {
				return fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if hdr.Mode&0o111 != 0 {
				mode = 0o755
			}
			// O_EXCL and no links: nothing in the tree can point outside.
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, mode)
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", clip(hdr.Name), err)
			}
			if _, err := io.CopyN(f, tr, hdr.Size); err != nil {
				f.Close()
				return fmt.Errorf("tar entry %q: %w", clip(hdr.Name), err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar entry %q: only files and folders are taken", clip(hdr.Name))
		}
	}
}
