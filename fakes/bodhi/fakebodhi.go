// Package fakebodhi is a test double of a Bodhi server over a real socket:
// GET /updates/<alias>, GET /updates/?builds=…, GET /csrf, POST /comments/
// and GET /comments/?updates=…, with Bodhi's JSON shapes and error bodies.
// Its updates come from a fixture file (fixtures/bodhi/updates.json, in the
// shape Bodhi serves them); comments are kept in memory.
package fakebodhi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/fakes/endpoint"
)

// Server is a fake Bodhi.
type Server struct {
	// Token, when set, must come as "Authorization: Bearer <token>" on
	// POST /comments/.
	Token string

	mu       sync.Mutex
	updates  []map[string]any
	comments []map[string]any
	csrf     string
	failNext int

	endpoint.Endpoint
}

// Load reads updates from a fixture file ({"updates": [...]}).
func Load(path string) (*Server, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bodhi fixture: %w", err)
	}
	var fx struct {
		Updates []map[string]any `json:"updates"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		return nil, fmt.Errorf("bodhi fixture %s: %w", path, err)
	}
	for i, u := range fx.Updates {
		if a, _ := u["alias"].(string); a == "" {
			return nil, fmt.Errorf("bodhi fixture %s: update %d has no alias", path, i+1)
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	return &Server{updates: fx.Updates, csrf: hex.EncodeToString(b)}, nil
}

// FailNext makes the next n requests answer 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Comments returns the comments posted so far, oldest first.
func (s *Server) Comments() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.comments...)
}

// Start listens on addr ("127.0.0.1:0" for any port) and serves.
func (s *Server) Start(addr string) error { return s.Serve("fake bodhi", addr, s) }

type apiErr struct{ location, name, description string }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeErrors answers in Cornice's error format, as Bodhi does.
func writeErrors(w http.ResponseWriter, code int, errs ...apiErr) {
	list := make([]any, len(errs))
	for i, e := range errs {
		list[i] = map[string]any{"location": e.location, "name": e.name, "description": e.description}
	}
	writeJSON(w, code, map[string]any{"status": "error", "errors": list})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if fail {
		http.Error(w, "503 Service Unavailable (fake outage)", http.StatusServiceUnavailable)
		return
	}
	path := r.URL.Path
	switch {
	case path == "/csrf" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"csrf_token": s.csrf})
	case (path == "/updates/" || path == "/updates") && r.Method == http.MethodGet:
		s.listUpdates(w, r)
	case strings.HasPrefix(path, "/updates/") && r.Method == http.MethodGet:
		alias := strings.Trim(strings.TrimPrefix(path, "/updates/"), "/")
		if u := s.find(alias); u != nil {
			writeJSON(w, http.StatusOK, map[string]any{"update": u, "can_edit": false})
			return
		}
		writeErrors(w, http.StatusNotFound, apiErr{"url", "id", "Invalid update id"})
	case (path == "/comments/" || path == "/comments") && r.Method == http.MethodPost:
		s.postComment(w, r)
	case (path == "/comments/" || path == "/comments") && r.Method == http.MethodGet:
		s.listComments(w, r)
	default:
		writeErrors(w, http.StatusNotFound, apiErr{"url", "path", "The resource could not be found."})
	}
}

func (s *Server) find(alias string) map[string]any {
	for _, u := range s.updates {
		if u["alias"] == alias || u["title"] == alias {
			return u
		}
	}
	return nil
}

func hasBuild(u map[string]any, nvr string) bool {
	builds, _ := u["builds"].([]any)
	for _, b := range builds {
		if m, _ := b.(map[string]any); m != nil && m["nvr"] == nvr {
			return true
		}
	}
	return false
}

func (s *Server) listUpdates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []any{}
	for _, u := range s.updates {
		if b := q.Get("builds"); b != "" {
			ok := false
			for _, nvr := range strings.Split(b, ",") {
				ok = ok || hasBuild(u, strings.TrimSpace(nvr))
			}
			if !ok {
				continue
			}
		}
		if a := q.Get("alias"); a != "" && u["alias"] != a {
			continue
		}
		out = append(out, u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"updates": out, "page": 1, "pages": 1, "rows_per_page": 20, "total": len(out)})
}

func (s *Server) postComment(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeErrors(w, http.StatusForbidden, apiErr{"header", "Authorization", "You must be logged in to comment"})
		return
	}
	var body map[string]any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			writeErrors(w, http.StatusBadRequest, apiErr{"body", "", "Invalid JSON: " + err.Error()})
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeErrors(w, http.StatusBadRequest, apiErr{"body", "", err.Error()})
			return
		}
		body = map[string]any{}
		for k := range r.PostForm {
			body[k] = r.PostForm.Get(k)
		}
	}
	var errs []apiErr
	if body["csrf_token"] != s.csrf {
		errs = append(errs, apiErr{"body", "csrf_token", "CSRF tokens do not match"})
	}
	alias, _ := body["update"].(string)
	u := s.find(alias)
	if u == nil {
		errs = append(errs, apiErr{"body", "update", "Invalid update specified: " + alias})
	}
	text, _ := body["text"].(string)
	karma := 0.0
	switch k := body["karma"].(type) {
	case float64:
		karma = k
	case string:
		fmt.Sscan(k, &karma)
	case nil:
	default:
		errs = append(errs, apiErr{"body", "karma", "karma must be -1, 0 or 1"})
	}
	if karma < -1 || karma > 1 || karma != float64(int(karma)) {
		errs = append(errs, apiErr{"body", "karma", fmt.Sprintf("%v is not one of -1, 0, 1", karma)})
	}
	if strings.TrimSpace(text) == "" && karma == 0 {
		errs = append(errs, apiErr{"body", "text", "You must provide either some text or feedback"})
	}
	if len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs...)
		return
	}
	s.mu.Lock()
	c := map[string]any{
		"id": len(s.comments) + 1, "text": text, "karma": int(karma), "karma_critpath": 0,
		"author": "taskotron", "user": map[string]any{"name": "taskotron"},
		"timestamp":    time.Now().UTC().Format("2006-01-02 15:04:05"),
		"update_alias": u["alias"], "update": map[string]any{"alias": u["alias"], "title": u["title"]},
		"bug_feedback": []any{}, "testcase_feedback": []any{},
	}
	s.comments = append(s.comments, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"comment": c, "caveats": []any{}})
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("updates")
	out := []any{}
	for _, c := range s.Comments() {
		if want == "" || c["update_alias"] == want {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"comments": out, "page": 1, "pages": 1, "rows_per_page": 20, "total": len(out)})
}
