package fakebodhi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestBodhiShapes(t *testing.T) {
	s, err := Load("../../fixtures/bodhi/updates.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	getJSON := func(path string) (int, map[string]any) {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := getJSON("/updates/FEDORA-2024-nope")
	errs, _ := m["errors"].([]any)
	if code != 404 || m["status"] != "error" || len(errs) != 1 || errs[0].(map[string]any)["name"] != "id" {
		t.Errorf("unknown update: %d %v", code, m)
	}
	code, m = getJSON("/updates/?builds=pythree-3.1-1.fc40")
	if code != 200 || m["total"] != 1.0 {
		t.Errorf("updates by build: %d %v", code, m)
	}
	// Bodhi's older clients post form data; the CSRF token is required.
	_, tok := getJSON("/csrf")
	form := url.Values{"update": {"FEDORA-2024-5f6e7d8c9b"}, "text": {"hello"}, "karma": {"0"}, "csrf_token": {tok["csrf_token"].(string)}}
	resp, err := http.PostForm(s.URL()+"/comments/", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(s.Comments()) != 1 {
		t.Errorf("form comment: %s, kept %v", resp.Status, s.Comments())
	}
	form.Set("csrf_token", "forged")
	resp, _ = http.PostForm(s.URL()+"/comments/", form)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a forged CSRF token gave %s", resp.Status)
	}
	code, m = getJSON("/comments/?updates=FEDORA-2024-5f6e7d8c9b")
	if code != 200 || m["total"] != 1.0 {
		t.Errorf("comments listing: %d %v", code, m)
	}
	if _, err := Load("nope.json"); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing fixture gave %v", err)
	}
}
