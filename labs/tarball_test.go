package labs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarGz(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		h := h
		body := strings.Repeat("x", int(h.Size))
		tw.WriteHeader(&h)
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestTreesStayInside: names outside the folder, links and devices are
// refused; files keep their executable bit; a tree over the ceiling fails.
func TestTreesStayInside(t *testing.T) {
	for _, h := range []tar.Header{
		{Name: "../escape", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "/abs", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "a/../../b", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"},
		{Name: "dev", Typeflag: tar.TypeChar},
	} {
		dir := t.TempDir()
		if err := readTree(bytes.NewReader(tarGz(t, h)), dir, 1<<20); err == nil {
			t.Errorf("%s (%c) was taken", h.Name, h.Typeflag)
		}
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "data"), []byte("data"), 0o600)
	os.Symlink("/etc/passwd", filepath.Join(src, "passwd"))
	var buf bytes.Buffer
	if err := writeTree(&buf, src, 1<<20); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := readTree(&buf, dst, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub", "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("run.sh: %v %v, want executable", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "passwd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a link travelled: %v", err)
	}
	var big bytes.Buffer
	if err := writeTree(&big, src, 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the ceiling: %v", err)
	}
}

func FuzzReadTree(f *testing.F) {
	f.Add(tarGz(f, tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 3, Mode: 0o755}))
	f.Add(tarGz(f, tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 1}))
	f.Add(tarGz(f, tar.Header{Name: "d/", Typeflag: tar.TypeDir}, tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Size: 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "in")
		os.Mkdir(dir, 0o755)
		readTree(bytes.NewReader(data), dir, 1<<16)
		// Nothing beside the folder, no link inside it.
		ents, _ := os.ReadDir(root)
		if len(ents) != 1 {
			t.Fatalf("written outside the folder: %v", ents)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("a link was made: %s", p)
			}
			return nil
		})
	})
}
