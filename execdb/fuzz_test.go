package execdb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPostEvents: whatever a client posts as events, the server answers
// 200 or a 4xx with a message, never a 500, and stays up.
func FuzzPostEvents(f *testing.F) {
	for _, seed := range []string{
		`[{"id": "w-1", "uuid": "u", "attempt": 1, "state": "running", "time": "2026-12-02T10:00:00Z", "worker": "h:1"}]`,
		`[{"id": "t-1", "uuid": "u", "attempt": 0, "state": "queued", "time": "2026-12-02T10:00:00Z", "priority": 3, "taskname": "rpmlint"}]`,
		`[{"id": "w-2", "uuid": "u", "attempt": 2, "state": "waiting_retry", "time": "2026-12-02T10:00:00Z", "retry_at": "2026-12-02T10:05:00Z"}]`,
		`[]`, `{}`, `null`, `[{"id": ""}]`, `[{"id": "x", "uuid": "u", "state": "lost"}]`,
	} {
		f.Add(seed)
	}
	s := openTestStore(f, "sqlite")
	h := http.NewServeMux()
	NewHandler(s, Options{}).Mount(h)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", APIPrefix+"/executions/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && (rec.Code < 400 || rec.Code >= 500 || !strings.Contains(rec.Body.String(), `"message"`)) {
			t.Fatalf("%q: %d %s", body, rec.Code, rec.Body)
		}
	})
}

func tarGz(entries map[string]string, links map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range entries {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))})
		tw.Write([]byte(data))
	}
	for name, target := range links {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target})
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// FuzzExtractArtifacts: an uploaded artifacts tree, whatever it holds,
// puts only regular files and folders, only inside its folder, at most the
// ceiling in all.
func FuzzExtractArtifacts(f *testing.F) {
	f.Add(tarGz(map[string]string{"taskotron/taskotron.log": "log\n", "out.txt": "x"}, nil))
	f.Add(tarGz(map[string]string{"../escape": "x"}, nil))
	f.Add(tarGz(map[string]string{"/etc/abs": "x"}, nil))
	f.Add(tarGz(nil, map[string]string{"link": "/etc/passwd"}))
	f.Add(tarGz(map[string]string{"a/b": "1", "a/b/c": "2"}, nil))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "in")
		os.Mkdir(dir, 0o755)
		err := extract(bytes.NewReader(data), dir, 1<<16)
		if err != nil && strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("error of more than one line: %q", err)
		}
		var total int64
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root || p == dir {
				return nil
			}
			if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
				t.Fatalf("%s written outside the artifacts folder", p)
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("%s is not a regular file or folder", p)
			}
			if fi, err := d.Info(); err == nil && !d.IsDir() {
				total += fi.Size()
			}
			return nil
		})
		if total > 1<<16 {
			t.Fatalf("%d bytes extracted past the ceiling", total)
		}
	})
}
