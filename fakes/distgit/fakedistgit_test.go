package fakedistgit

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServesRawFilesOnly(t *testing.T) {
	s, err := New("../../fixtures/distgit")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/rpms/lintbad/raw/f40/f/lintbad.rpmlintrc"); code != 200 || !strings.Contains(body, "addFilter") {
		t.Errorf("raw file: %d %q", code, body)
	}
	for _, p := range []string{
		"/rpms/lintbad/raw/f39/f/lintbad.rpmlintrc",  // no such branch
		"/rpms/lintbad/blob/f40/f/lintbad.rpmlintrc", // not the raw view
		"/rpms/lintbad/raw/f40/f/../../../koji/koji.yaml",
		"/rpms/lintbad/raw/f40/f/%2e%2e/rawhide/lintbad.rpmlintrc",
		"/rpms/lintbad/raw/f40/f/",
	} {
		if code, _ := get(p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	if _, err := New("nope"); err == nil {
		t.Error("a missing root was accepted")
	}
}
