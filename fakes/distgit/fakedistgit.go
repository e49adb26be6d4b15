// Package fakedistgit is a test double of dist-git's raw file access
// (src.fedoraproject.org, Pagure): GET /<namespace>/<package>/raw/<gitref>/f/<path>
// answers the file <root>/<namespace>/<package>/<gitref>/<path>, or 404.
package fakedistgit

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/taskotron-go/taskotron/fakes/endpoint"
)

// Server serves raw files from a folder.
type Server struct {
	root string

	mu       sync.Mutex
	failNext int
	requests []string

	endpoint.Endpoint
}

// New serves the files below root.
func New(root string) (*Server, error) {
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("fake dist-git: %s is not a folder", root)
	}
	return &Server{root: root}, nil
}

// FailNext makes the next n requests answer 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Requests lists the paths asked for so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Start listens on addr ("127.0.0.1:0" for any port) and serves.
func (s *Server) Start(addr string) error { return s.Serve("fake dist-git", addr, s) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.Path)
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if fail {
		http.Error(w, "503 Service Unavailable (fake outage)", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	// <namespace>/<package>/raw/<gitref>/f/<path...>
	parts := strings.SplitN(strings.TrimPrefix(path.Clean(r.URL.Path), "/"), "/", 6)
	if len(parts) < 6 || parts[2] != "raw" || parts[4] != "f" {
		http.Error(w, "Page not found", http.StatusNotFound)
		return
	}
	for _, p := range parts {
		if p == ".." || p == "" {
			http.Error(w, "Page not found", http.StatusNotFound)
			return
		}
	}
	file := filepath.Join(s.root, parts[0], parts[1], parts[3], filepath.FromSlash(parts[5]))
	if fi, err := os.Stat(file); err != nil || fi.IsDir() {
		http.Error(w, "File not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	http.ServeFile(w, r, file)
}
