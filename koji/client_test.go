package koji_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fakekoji "github.com/taskotron-go/taskotron/fakes/koji"
	"github.com/taskotron-go/taskotron/koji"
	"github.com/taskotron-go/taskotron/koji/xmlrpc"
)

func startHub(t *testing.T) *fakekoji.Hub {
	t.Helper()
	d, err := fakekoji.Load("../fixtures/koji/koji.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := fakekoji.NewHub(d, nil)
	if err := h.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func fastClient(h *fakekoji.Hub, cache string) *koji.Client {
	return koji.New(h.HubURL(), h.PkgURL(), koji.Options{
		Timeout: 2 * time.Second, Retries: 2, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond, CacheDir: cache,
	})
}

func TestGetBuildAndRPMs(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	ctx := context.Background()
	b, err := c.GetBuild(ctx, "pyboth-2.0-1.fc40")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "pyboth" || b.Version != "2.0" || b.Epoch == nil || *b.Epoch != 1 || b.State != koji.StateComplete {
		t.Errorf("getBuild = %+v", b)
	}
	rpms, err := c.ListRPMs(ctx, b.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var arches []string
	for _, r := range rpms {
		arches = append(arches, r.Arch)
	}
	slices.Sort(arches)
	if !slices.Equal(arches, []string{"noarch", "src"}) {
		t.Errorf("pyboth arches = %v", arches)
	}
	only, err := c.ListRPMs(ctx, b.ID, []string{"src"})
	if err != nil || len(only) != 1 || only[0].Arch != "src" {
		t.Errorf("listRPMs(arches=[src]) = %+v, %v", only, err)
	}
	if _, err := c.GetBuild(ctx, "nosuch-1.0-1.fc40"); !errors.Is(err, koji.ErrNotFound) {
		t.Errorf("a missing build gave %v, want ErrNotFound", err)
	}
}

func TestListTagged(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	ctx := context.Background()
	got, err := c.ListTagged(ctx, "f40-updates", true, true, "tinyhello")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].NVR != "tinyhello-1.0-1.fc40" || got[0].TagName != "f40-updates" {
		t.Errorf("latest tinyhello in f40-updates (inherited) = %+v", got)
	}
	all, err := c.ListTagged(ctx, "f40-updates", false, true, "")
	if err != nil || len(all) != 3 {
		t.Errorf("all of f40-updates with inheritance = %+v, %v", all, err)
	}
	if _, err := c.ListTagged(ctx, "f99", false, false, ""); !errors.Is(err, koji.ErrNotFound) {
		t.Errorf("unknown tag gave %v, want ErrNotFound", err)
	}
	if _, err := c.GetTag(ctx, "f99"); !errors.Is(err, koji.ErrNotFound) {
		t.Errorf("getTag(f99) gave %v, want ErrNotFound", err)
	}
	if tag, err := c.GetTag(ctx, "f40"); err != nil || tag.Name != "f40" {
		t.Errorf("getTag(f40) = %+v, %v", tag, err)
	}
}

func TestDownloadVerifiesAndCaches(t *testing.T) {
	h := startHub(t)
	cache := t.TempDir()
	c := fastClient(h, cache)
	ctx := context.Background()
	b, _ := c.GetBuild(ctx, "pythree-3.1-1.fc40")
	rpms, _ := c.ListRPMs(ctx, b.ID, []string{"noarch"})
	if len(rpms) != 1 {
		t.Fatalf("rpms = %+v", rpms)
	}
	dir := t.TempDir()
	p, err := c.DownloadRPM(ctx, b, rpms[0], dir)
	if err != nil {
		t.Fatal(err)
	}
	if hdr, err := koji.ReadRPM(p); err != nil || hdr.Name != "pythree" {
		t.Fatalf("downloaded %s: %+v %v", p, hdr, err)
	}
	// Second time the cache answers even with the hub's file server down.
	h.FailNext(100)
	dir2 := t.TempDir()
	if _, err := c.DownloadRPM(ctx, b, rpms[0], dir2); err != nil {
		t.Fatalf("cached download: %v", err)
	}
}

func TestDownloadWrongChecksum(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	ctx := context.Background()
	h.SetPayloadHash("pythree-3.1-1.fc40.noarch", "0123456789abcdef0123456789abcdef")
	b, _ := c.GetBuild(ctx, "pythree-3.1-1.fc40")
	rpms, _ := c.ListRPMs(ctx, b.ID, []string{"noarch"})
	dir := t.TempDir()
	_, err := c.DownloadRPM(ctx, b, rpms[0], dir)
	var ue *koji.UnavailableError
	var ce *koji.ChecksumError
	if !errors.As(err, &ue) || !errors.As(err, &ce) {
		t.Fatalf("wrong checksum gave %v, want an UnavailableError wrapping a ChecksumError", err)
	}
	if !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("error %q does not say what went wrong", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a file that failed verification was left behind: %v", left)
	}
}

func TestHubOutages(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	ctx := context.Background()
	// A short outage is ridden out by the retries.
	h.FailNext(2)
	if _, err := c.GetBuild(ctx, "pythree-3.1-1.fc40"); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
	// One that lasts longer than the retries is an infrastructure error.
	h.FailNext(10)
	_, err := c.GetBuild(ctx, "pythree-3.1-1.fc40")
	var ue *koji.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a hub that stays down gave %v", err)
	}
	h.FailNext(0)
	// A hub that never answers times out.
	h.Stall(time.Minute)
	slow := koji.New(h.HubURL(), h.PkgURL(), koji.Options{Timeout: 100 * time.Millisecond, Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	_, err = slow.GetBuild(ctx, "pythree-3.1-1.fc40")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("a stalled hub gave %v", err)
	}
	h.Stall(0)
	// Nothing listening at all.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	gone := koji.New("http://"+addr+"/kojihub", "http://"+addr+"/packages", koji.Options{Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	if _, err := gone.GetBuild(ctx, "x-1-1"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("no hub gave %v", err)
	}
}

func TestFetchNotFound(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	err := c.Fetch(context.Background(), h.PkgURL()+"/pythree/3.1/1.fc40/data/logs/x86_64/build.log", filepath.Join(t.TempDir(), "log"))
	if !errors.Is(err, koji.ErrHTTPNotFound) {
		t.Fatalf("a missing log gave %v, want ErrHTTPNotFound", err)
	}
}

// BenchmarkGetBuild is one getBuild round trip to the fake hub over a
// real socket: the client's own overhead per hub call.
func BenchmarkGetBuild(b *testing.B) {
	d, err := fakekoji.Load("../fixtures/koji/koji.yaml")
	if err != nil {
		b.Fatal(err)
	}
	h := fakekoji.NewHub(d, nil)
	if err := h.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	c := koji.New(h.HubURL(), h.PkgURL(), koji.Options{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.GetBuild(ctx, "pythree-3.1-1.fc40"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRawCalls(t *testing.T) {
	h := startHub(t)
	c := fastClient(h, "")
	ctx := context.Background()
	v, err := c.Call(ctx, "getLatestBuilds", []any{"f40-updates"}, map[string]any{"package": "tinyhello"})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := v.([]any); len(l) != 1 || l[0].(map[string]any)["nvr"] != "tinyhello-1.0-1.fc40" {
		t.Errorf("getLatestBuilds = %v", v)
	}
	if v, err := c.Call(ctx, "getAPIVersion", nil, nil); err != nil || v != int64(1) {
		t.Errorf("getAPIVersion = %v, %v", v, err)
	}
	_, err = c.Call(ctx, "deleteBuild", []any{"x-1-1"}, nil)
	var f *xmlrpc.Fault
	if !errors.As(err, &f) || !strings.Contains(f.String, "Invalid method: deleteBuild") {
		t.Errorf("unknown method gave %v", err)
	}
	var ue *koji.UnavailableError
	if errors.As(err, &ue) {
		t.Errorf("a fault is the hub's answer, not an outage: %v", err)
	}
	if _, err := c.GetBuild(ctx, int64(99999)); !errors.Is(err, koji.ErrNotFound) {
		t.Errorf("unknown build id gave %v", err)
	}
}
