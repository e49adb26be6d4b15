// Package fakekoji is a test double of a Koji hub that speaks the real
// protocol over a real socket: XML-RPC at /kojihub (getBuild, listRPMs,
// listTagged, getTag, getLatestBuilds, getAPIVersion, hello) and a packages
// file tree at /packages/ with Koji's layout. Its data comes from real RPM
// files and a fixture file (fixtures/koji/koji.yaml).
package fakekoji

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/fakes/endpoint"
	"github.com/taskotron-go/taskotron/koji"
	"github.com/taskotron-go/taskotron/koji/xmlrpc"
	"github.com/taskotron-go/taskotron/rpmver"
)

// Build is one build the hub knows.
type Build struct {
	ID                     int64
	Name, Version, Release string
	Epoch                  *int64
	State                  int
	RPMs                   []*RPM
	Log                    string // path of build.log, empty when none
}

// NVR is the build's name-version-release.
func (b *Build) NVR() string { return b.Name + "-" + b.Version + "-" + b.Release }

// RPM is one file of a build.
type RPM struct {
	ID          int64
	Header      koji.RPMHeader
	Path        string // the file served; empty for data-only builds
	Size        int64
	PayloadHash string
}

// Tag holds builds in tagging order; Parents are inherited from.
type Tag struct {
	ID      int64
	Name    string
	Parents []string
	Builds  []string
}

// Data is everything the hub serves.
type Data struct {
	Builds map[string]*Build // by NVR
	Tags   map[string]*Tag
}

// fixture is the YAML file's shape.
type fixture struct {
	// RPMs is a folder of build folders (<nvr>/*.rpm, <nvr>/build.log),
	// relative to the fixture file.
	RPMs string `yaml:"rpms"`
	// Builds lists builds known as data only (no files), as N(E)VRs.
	Builds []string `yaml:"builds"`
	// Tags maps a tag to its parents and builds (in tagging order).
	Tags map[string]struct {
		Parents []string `yaml:"parents"`
		Builds  []string `yaml:"builds"`
	} `yaml:"tags"`
}

// Load reads a fixture file and the RPMs it points to.
func Load(path string) (*Data, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("koji fixture: %w", err)
	}
	var fx fixture
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&fx); err != nil {
		return nil, fmt.Errorf("koji fixture %s: %w", path, err)
	}
	d := &Data{Builds: map[string]*Build{}, Tags: map[string]*Tag{}}
	if fx.RPMs != "" {
		dir := fx.RPMs
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		if err := d.addRPMDir(dir); err != nil {
			return nil, fmt.Errorf("koji fixture %s: %w", path, err)
		}
	}
	for _, s := range fx.Builds {
		n, err := rpmver.ParseNVR(s)
		if err != nil {
			return nil, fmt.Errorf("koji fixture %s: builds: %w", path, err)
		}
		b := &Build{Name: n.Name, Version: n.Version, Release: n.Release, State: koji.StateComplete}
		if n.Epoch != 0 {
			e := int64(n.Epoch)
			b.Epoch = &e
		}
		if _, dup := d.Builds[b.NVR()]; dup {
			return nil, fmt.Errorf("koji fixture %s: build %s listed twice", path, b.NVR())
		}
		d.Builds[b.NVR()] = b
	}
	names := make([]string, 0, len(fx.Tags))
	for name := range fx.Tags {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		t := fx.Tags[name]
		builds := make([]string, 0, len(t.Builds))
		for _, s := range t.Builds {
			n, err := rpmver.ParseNVR(s)
			if err != nil {
				return nil, fmt.Errorf("koji fixture %s: tag %s: %w", path, name, err)
			}
			nvr := n.Name + "-" + n.Version + "-" + n.Release
			if d.Builds[nvr] == nil {
				return nil, fmt.Errorf("koji fixture %s: tag %s: unknown build %s", path, name, s)
			}
			builds = append(builds, nvr)
		}
		for _, p := range t.Parents {
			if _, ok := fx.Tags[p]; !ok {
				return nil, fmt.Errorf("koji fixture %s: tag %s: unknown parent %s", path, name, p)
			}
		}
		d.Tags[name] = &Tag{ID: int64(100 + i), Name: name, Parents: t.Parents, Builds: builds}
	}
	d.number()
	return d, nil
}

// addRPMDir reads every <nvr>/ folder of real RPMs below dir.
func (d *Data) addRPMDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.rpm"))
		if len(files) == 0 {
			continue
		}
		var b *Build
		for _, f := range files {
			h, err := koji.ReadRPM(f)
			if err != nil {
				return err
			}
			fi, err := os.Stat(f)
			if err != nil {
				return err
			}
			if h.Source {
				if b != nil && b.Name != "" {
					return fmt.Errorf("%s: two source RPMs", e.Name())
				}
				if b == nil {
					b = &Build{}
				}
				b.Name, b.Version, b.Release, b.Epoch = h.Name, h.Version, h.Release, h.Epoch
			}
			if b == nil {
				b = &Build{}
			}
			// Koji's payloadhash is the header's SIGMD5, as imported.
			b.RPMs = append(b.RPMs, &RPM{Header: h, Path: f, Size: fi.Size(), PayloadHash: h.SigMD5})
		}
		if b.Name == "" {
			return fmt.Errorf("%s: no source RPM, cannot tell the build", e.Name())
		}
		b.State = koji.StateComplete
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "build.log")); err == nil {
			b.Log = filepath.Join(dir, e.Name(), "build.log")
		}
		d.Builds[b.NVR()] = b
	}
	return nil
}

// number gives builds and RPMs stable ids in NVR order.
func (d *Data) number() {
	nvrs := make([]string, 0, len(d.Builds))
	for n := range d.Builds {
		nvrs = append(nvrs, n)
	}
	sort.Strings(nvrs)
	rpmID := int64(5000)
	for i, n := range nvrs {
		b := d.Builds[n]
		b.ID = int64(1000 + i)
		sort.Slice(b.RPMs, func(x, y int) bool { return b.RPMs[x].Header.NVRA() < b.RPMs[y].Header.NVRA() })
		for _, r := range b.RPMs {
			r.ID = rpmID
			rpmID++
		}
	}
}

// Hub serves Data over HTTP. Its fault switches let tests break it.
type Hub struct {
	data *Data
	log  *slog.Logger

	mu       sync.Mutex
	stall    time.Duration
	failNext int
	hashes   map[string]string
	noLog    map[string]bool
	calls    []string

	endpoint.Endpoint
}

// NewHub makes a hub for data; log may be nil.
func NewHub(data *Data, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Hub{data: data, log: log, hashes: map[string]string{}, noLog: map[string]bool{}}
}

// Stall makes every hub call wait d before answering (0 stops it), to
// play a hub that times out.
func (h *Hub) Stall(d time.Duration) {
	h.mu.Lock()
	h.stall = d
	h.mu.Unlock()
}

// FailNext makes the next n requests (hub or packages) answer 503.
func (h *Hub) FailNext(n int) {
	h.mu.Lock()
	h.failNext = n
	h.mu.Unlock()
}

// SetPayloadHash makes listRPMs report hash for the RPM named nvra, to play
// a corrupted file.
func (h *Hub) SetPayloadHash(nvra, hash string) {
	h.mu.Lock()
	h.hashes[nvra] = hash
	h.mu.Unlock()
}

// DropLog makes the packages tree answer 404 for the build logs of nvr.
func (h *Hub) DropLog(nvr string) {
	h.mu.Lock()
	h.noLog[nvr] = true
	h.mu.Unlock()
}

// Calls lists the hub methods called so far, in order.
func (h *Hub) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// Start listens on addr ("127.0.0.1:0" for any port) and serves.
func (h *Hub) Start(addr string) error { return h.Serve("fake koji", addr, h) }

// HubURL is the XML-RPC endpoint, PkgURL the packages tree.
func (h *Hub) HubURL() string { return h.URL() + "/kojihub" }
func (h *Hub) PkgURL() string { return h.URL() + "/packages" }

func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	fail := h.failNext > 0
	if fail {
		h.failNext--
	}
	h.mu.Unlock()
	if fail {
		http.Error(w, "503 Service Unavailable (fake outage)", http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.URL.Path == "/kojihub":
		h.serveHub(w, r)
	case strings.HasPrefix(r.URL.Path, "/packages/"):
		h.servePackages(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Hub) serveHub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Method Not Allowed: XML-RPC needs POST", http.StatusMethodNotAllowed)
		return
	}
	method, params, err := xmlrpc.DecodeCall(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		h.fault(w, 1000, "koji.GenericError: "+err.Error())
		return
	}
	h.mu.Lock()
	stall := h.stall
	h.calls = append(h.calls, method)
	h.mu.Unlock()
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
			return
		}
	}
	args, kw := splitArgs(params)
	v, ferr := h.call(method, args, kw)
	if ferr != nil {
		h.log.Debug("fake koji fault", "method", method, "err", ferr.String)
		h.fault(w, ferr.Code, ferr.String)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	if err := xmlrpc.EncodeResponse(w, v); err != nil {
		h.log.Error("fake koji encode", "method", method, "err", err)
	}
}

func (h *Hub) fault(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	xmlrpc.EncodeFault(w, &xmlrpc.Fault{Code: code, String: msg})
}

// splitArgs takes Koji's keyword arguments out of the last parameter.
func splitArgs(params []any) ([]any, map[string]any) {
	if n := len(params); n > 0 {
		if m, ok := params[n-1].(map[string]any); ok && m["__starstar"] == true {
			kw := map[string]any{}
			for k, v := range m {
				if k != "__starstar" {
					kw[k] = v
				}
			}
			return params[:n-1], kw
		}
	}
	return params, map[string]any{}
}

// arg finds a parameter by position or by keyword.
func arg(args []any, kw map[string]any, pos int, name string) any {
	if v, ok := kw[name]; ok {
		return v
	}
	if pos < len(args) {
		return args[pos]
	}
	return nil
}

func (h *Hub) call(method string, args []any, kw map[string]any) (any, *xmlrpc.Fault) {
	switch method {
	case "hello":
		return "Hello World", nil
	case "getAPIVersion":
		return int64(1), nil
	case "getBuild":
		b := h.findBuild(arg(args, kw, 0, "buildInfo"))
		if b == nil {
			if arg(args, kw, 1, "strict") == true {
				return nil, &xmlrpc.Fault{Code: 1000, String: fmt.Sprintf("koji.GenericError: No such build: %v", arg(args, kw, 0, "buildInfo"))}
			}
			return nil, nil
		}
		return buildInfo(b, ""), nil
	case "listRPMs":
		id, _ := arg(args, kw, 0, "buildID").(int64)
		var arches []string
		switch a := arg(args, kw, 5, "arches").(type) {
		case string:
			arches = []string{a}
		case []any:
			for _, x := range a {
				s, _ := x.(string)
				arches = append(arches, s)
			}
		}
		out := []any{}
		for _, b := range h.data.Builds {
			if b.ID != id {
				continue
			}
			for _, r := range b.RPMs {
				if arches != nil && !contains(arches, r.Header.Arch) {
					continue
				}
				out = append(out, h.rpmInfo(b, r))
			}
		}
		return out, nil
	case "getTag":
		t := h.findTag(arg(args, kw, 0, "tagInfo"))
		if t == nil {
			if arg(args, kw, 1, "strict") == true {
				return nil, &xmlrpc.Fault{Code: 1000, String: fmt.Sprintf("koji.GenericError: No such tagInfo: %v", arg(args, kw, 0, "tagInfo"))}
			}
			return nil, nil
		}
		return map[string]any{"id": t.ID, "name": t.Name, "arches": nil, "locked": false, "perm": nil, "perm_id": nil,
			"maven_support": false, "maven_include_all": false, "extra": map[string]any{}}, nil
	case "listTagged", "getLatestBuilds":
		t := h.findTag(arg(args, kw, 0, "tag"))
		if t == nil {
			return nil, &xmlrpc.Fault{Code: 1000, String: fmt.Sprintf("koji.GenericError: No such tagInfo: %v", arg(args, kw, 0, "tag"))}
		}
		latest := method == "getLatestBuilds" || arg(args, kw, 4, "latest") == true
		inherit := method == "getLatestBuilds" || arg(args, kw, 2, "inherit") == true
		pkg, _ := arg(args, kw, 5, "package").(string)
		if method == "getLatestBuilds" {
			pkg, _ = arg(args, kw, 2, "package").(string)
		}
		return h.tagged(t, latest, inherit, pkg), nil
	}
	return nil, &xmlrpc.Fault{Code: 1000, String: "koji.GenericError: Invalid method: " + method}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h *Hub) findBuild(info any) *Build {
	switch x := info.(type) {
	case int64:
		for _, b := range h.data.Builds {
			if b.ID == x {
				return b
			}
		}
	case string:
		if b := h.data.Builds[x]; b != nil {
			return b
		}
		// Koji also accepts N-E:V-R.
		if n, err := rpmver.ParseNVR(x); err == nil {
			return h.data.Builds[n.Name+"-"+n.Version+"-"+n.Release]
		}
	case map[string]any:
		if id, ok := x["id"].(int64); ok {
			return h.findBuild(id)
		}
		if nvr, ok := x["nvr"].(string); ok {
			return h.findBuild(nvr)
		}
	}
	return nil
}

func (h *Hub) findTag(info any) *Tag {
	switch x := info.(type) {
	case string:
		return h.data.Tags[x]
	case int64:
		for _, t := range h.data.Tags {
			if t.ID == x {
				return t
			}
		}
	}
	return nil
}

// tagged lists a tag's builds newest tagging first, as Koji does; with
// inherit the parents' builds follow, and latest keeps the first per package.
func (h *Hub) tagged(t *Tag, latest, inherit bool, pkg string) []any {
	out := []any{}
	seen := map[string]bool{}
	visited := map[string]bool{}
	var walk func(t *Tag)
	walk = func(t *Tag) {
		if visited[t.Name] {
			return
		}
		visited[t.Name] = true
		for i := len(t.Builds) - 1; i >= 0; i-- {
			b := h.data.Builds[t.Builds[i]]
			if pkg != "" && b.Name != pkg {
				continue
			}
			if latest && seen[b.Name] {
				continue
			}
			seen[b.Name] = true
			out = append(out, buildInfo(b, t.Name))
		}
		if inherit {
			for _, p := range t.Parents {
				walk(h.data.Tags[p])
			}
		}
	}
	walk(t)
	return out
}

func buildInfo(b *Build, tag string) map[string]any {
	m := map[string]any{
		"id": b.ID, "build_id": b.ID, "package_id": b.ID + 100000, "name": b.Name, "package_name": b.Name,
		"version": b.Version, "release": b.Release, "nvr": b.NVR(), "epoch": nil, "state": int64(b.State),
		"owner_name": "taskotron", "owner_id": int64(1), "task_id": b.ID + 900000, "volume_id": int64(0),
		"volume_name": "DEFAULT", "creation_time": "2024-01-01 00:00:00.000000+00:00",
		"completion_time": "2024-01-01 00:10:00.000000+00:00", "source": nil, "extra": nil,
	}
	if b.Epoch != nil {
		m["epoch"] = *b.Epoch
	}
	if tag != "" {
		m["tag_name"] = tag
	}
	return m
}

func (h *Hub) rpmInfo(b *Build, r *RPM) map[string]any {
	hash := r.PayloadHash
	h.mu.Lock()
	if o, ok := h.hashes[r.Header.NVRA()]; ok {
		hash = o
	}
	h.mu.Unlock()
	m := map[string]any{
		"id": r.ID, "build_id": b.ID, "name": r.Header.Name, "version": r.Header.Version,
		"release": r.Header.Release, "nvr": r.Header.Name + "-" + r.Header.Version + "-" + r.Header.Release,
		"arch": r.Header.Arch, "epoch": nil, "size": r.Size, "payloadhash": hash, "buildroot_id": b.ID,
		"external_repo_id": int64(0), "external_repo_name": "INTERNAL", "metadata_only": false, "extra": nil,
	}
	if r.Header.Epoch != nil {
		m["epoch"] = *r.Header.Epoch
	}
	return m
}

// servePackages serves <name>/<version>/<release>/<arch>/<nvra>.rpm and
// <name>/<version>/<release>/data/logs/<arch>/build.log.
func (h *Hub) servePackages(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/packages/"), "/")
	if len(parts) < 5 {
		http.NotFound(w, r)
		return
	}
	b := h.data.Builds[parts[0]+"-"+parts[1]+"-"+parts[2]]
	if b == nil {
		http.NotFound(w, r)
		return
	}
	rest := parts[3:]
	if len(rest) == 4 && rest[0] == "data" && rest[1] == "logs" && rest[3] == "build.log" {
		h.mu.Lock()
		dropped := h.noLog[b.NVR()]
		h.mu.Unlock()
		if b.Log == "" || dropped || !h.hasArch(b, rest[2]) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.ServeFile(w, r, b.Log)
		return
	}
	if len(rest) == 2 {
		for _, rp := range b.RPMs {
			if rp.Path != "" && rp.Header.Arch == rest[0] && rp.Header.NVRA()+".rpm" == rest[1] {
				w.Header().Set("Content-Type", "application/x-rpm")
				http.ServeFile(w, r, rp.Path)
				return
			}
		}
	}
	http.NotFound(w, r)
}

func (h *Hub) hasArch(b *Build, arch string) bool {
	for _, r := range b.RPMs {
		if r.Header.Arch == arch && arch != "src" {
			return true
		}
	}
	return false
}
