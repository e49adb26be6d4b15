package endpoint

import (
	"io"
	"net/http"
	"testing"
)

func TestServesOnARealSocketUntilClosed(t *testing.T) {
	var e Endpoint
	if err := e.Close(); err != nil {
		t.Fatalf("closing an endpoint that never started: %v", err)
	}
	if err := e.Serve("test double", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.URL() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Errorf("body %q", body)
	}
	e.Close()
	if _, err := http.Get(e.URL()); err == nil {
		t.Error("still serving after Close")
	}
	var taken Endpoint
	if err := taken.Serve("test double", e.ln.Addr().String()+"x", nil); err == nil {
		t.Error("a bad address was accepted")
	}
}
