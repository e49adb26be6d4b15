package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/labs"
)

// TestLabOverHTTPS: a lab agent process reaches the central server through
// a TLS front (as production puts it behind one) and trusts it through the
// system's certificate settings (SSL_CERT_FILE); a front it does not trust
// is one clear line, waited out, never used.
func TestLabOverHTTPS(t *testing.T) {
	bin := buildTaskotron(t)
	dir := t.TempDir()
	hubData := filepath.Join(dir, "hub")
	tasks := filepath.Join(dir, "tasks")
	os.MkdirAll(filepath.Join(tasks, "quick"), 0o755)
	os.WriteFile(filepath.Join(tasks, "quick", "runtask.yml"), []byte(labTasks["quick"]), 0o644)
	if err := checkout.Seed(tasks, filepath.Join(hubData, "mirror")); err != nil {
		t.Fatal(err)
	}
	hubEnv := append(os.Environ(), "TASKOTRON_DATA_DIR="+hubData, "TASKOTRON_EXECDB_TOKEN=admin-secret")
	add := exec.Command(bin, "lab", "token", "add", "lab-tls")
	add.Env = hubEnv
	out, err := add.Output()
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(out))
	addr := freeAddr(t)
	hub := exec.Command(bin, "resultsdb", "serve", "--listen", addr)
	hubLog := &lockedBuffer{}
	hub.Env, hub.Stdout, hub.Stderr = hubEnv, hubLog, hubLog
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() })
	waitHTTP(t, "the central server", "http://"+addr+"/api/v2.0/", 20*time.Second, func(code int, _ string) bool { return code > 0 && code < 500 })
	backend, _ := url.Parse("http://" + addr)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(backend))
	t.Cleanup(front.Close)
	cert := filepath.Join(dir, "front.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o644)

	// Not trusted: one line saying so, and the agent waits.
	untrusted := exec.Command(bin, "lab", "--hub", front.URL, "--token", token)
	untrusted.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, "lab0"))
	ulog := &lockedBuffer{}
	untrusted.Stdout, untrusted.Stderr = ulog, ulog
	untrusted.Start()
	t.Cleanup(func() { untrusted.Process.Kill(); untrusted.Wait() })

	lab := exec.Command(bin, "lab", "--hub", front.URL, "--token", token, "--label", "cpu=cortex-a9")
	lab.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, "lab1"), "SSL_CERT_FILE="+cert)
	labLog := &lockedBuffer{}
	lab.Stdout, lab.Stderr = labLog, labLog
	if err := lab.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Process.Kill(); lab.Wait() })

	admin, _ := labs.NewClient("http://"+addr, "admin-secret", nil)
	got, err := admin.Put(context.Background(), labs.NewRequest{TaskName: "quick", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Where: labs.Labels{"cpu": "cortex-a9"}})
	if err != nil {
		t.Fatal(err)
	}
	id := got[0].ID
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := admin.Get(context.Background(), id)
		if err == nil && r.State == labs.StateFinished {
			if r.Lab != "lab-tls" || r.Outcome != "PASSED" {
				t.Errorf("request %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s not finished over HTTPS: %+v %v\nlab:\n%s\nhub:\n%s", id, r, err, labLog, hubLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The run's log came through the front too.
	code, body := httpGet(t, "http://"+addr+"/api/v2.0/executions/"+id+"/logs/1/01-work.stdout")
	if code != http.StatusOK || !strings.Contains(body, "ok 1 - quick") {
		t.Errorf("live log over HTTPS: %d %q", code, body)
	}
	if s := ulog.String(); !strings.Contains(s, "cannot reach the central server") || !strings.Contains(s, "certificate") {
		t.Errorf("an untrusted front: want one line naming the certificate, got:\n%s", s)
	}
}
