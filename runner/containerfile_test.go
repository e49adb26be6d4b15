package runner

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
)

// instruction is one line of a Containerfile, continuation lines joined.
type instruction struct {
	Cmd, Args string
	Line      int
}

func readContainerfile(t *testing.T) []instruction {
	t.Helper()
	raw, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.Join(strings.Fields(args), " "), Line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("Containerfile ends in a continuation line")
	}
	return out
}

// The image is built as the README says: the binary from this module on
// the Go of go.mod, and on Debian the packages the install script's image
// profile lists (the tasks' tools and CA certificates), installed by that
// script and nothing else; it runs `taskotron up` unprivileged, on the port
// it exposes. (Docker is not at hand to build it; this checks what can be
// checked without.)
func TestContainerfileBuildsTheBinaryWithTheTasksTools(t *testing.T) {
	ins := readContainerfile(t)
	known := map[string]bool{"FROM": true, "WORKDIR": true, "COPY": true, "RUN": true, "USER": true, "ENV": true, "EXPOSE": true, "ENTRYPOINT": true, "CMD": true, "ARG": true, "LABEL": true}
	var froms []instruction
	for _, in := range ins {
		if !known[in.Cmd] {
			t.Errorf("Containerfile:%d: unknown instruction %s", in.Line, in.Cmd)
		}
		if in.Cmd == "FROM" {
			froms = append(froms, in)
		}
		if in.Cmd == "RUN" && regexp.MustCompile(`\bapt(-get)? +install\b|\bdpkg +(-i|--install)\b`).MatchString(in.Args) {
			t.Errorf("Containerfile:%d: installs packages itself (%s); scripts/env.sh image does it", in.Line, in.Args)
		}
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if len(froms) != 2 || goVersion == nil {
		t.Fatalf("want a build stage and the image, got %v (go.mod go %s)", froms, goVersion)
	}
	build := regexp.MustCompile(`^docker\.io/library/golang:(\d+\.\d+)-(\w+) AS build$`).FindStringSubmatch(froms[0].Args)
	final := regexp.MustCompile(`^docker\.io/library/debian:(\w+)-slim$`).FindStringSubmatch(froms[1].Args)
	if build == nil || final == nil || build[1] != string(goVersion[1]) || build[2] != final[1] {
		t.Fatalf("FROM %q and %q: want golang:%s-<release> AS build, then debian:<the same release>-slim", froms[0].Args, froms[1].Args, goVersion[1])
	}

	var buildStage, image []instruction
	for _, in := range ins {
		if in.Line >= froms[1].Line {
			image = append(image, in)
		} else {
			buildStage = append(buildStage, in)
		}
	}
	built := ""
	for _, in := range buildStage {
		if m := regexp.MustCompile(`^CGO_ENABLED=0 go build .*-o (\S+) \./cmd/taskotron$`).FindStringSubmatch(in.Args); in.Cmd == "RUN" && m != nil {
			built = m[1]
		}
	}
	if built == "" {
		t.Error("the build stage does not build ./cmd/taskotron with CGO_ENABLED=0 (the binary must run on debian-slim)")
	}

	// The image: the script copied in, run with the image profile, the
	// binary from the build stage.
	var script, user, entry, cmd, expose string
	ran, binary := false, false
	env := map[string]string{}
	for _, in := range image {
		f := strings.Fields(in.Args)
		switch in.Cmd {
		case "COPY":
			if len(f) == 2 && f[0] == "scripts/env.sh" {
				script = f[1]
			}
			if len(f) == 3 && f[0] == "--from=build" && f[1] == built && f[2] == "/usr/local/bin/taskotron" {
				binary = true
			}
			if !strings.HasPrefix(f[0], "--from=") {
				if _, err := os.Stat("../" + f[0]); err != nil {
					t.Errorf("Containerfile:%d: COPY %s: %v", in.Line, f[0], err)
				}
			}
		case "RUN":
			if script != "" && strings.HasPrefix(in.Args, "bash "+script+" image && rm -rf /var/lib/apt/lists/*") {
				ran = true
			}
		case "USER":
			user = in.Args
		case "ENV":
			for _, kv := range f {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "EXPOSE":
			expose = in.Args
		case "ENTRYPOINT":
			entry = in.Args
		case "CMD":
			cmd = in.Args
		}
	}
	if !ran || !binary {
		t.Errorf("the image must run scripts/env.sh image (copied to %q: ran %v) and take the binary from the build stage (%v)", script, ran, binary)
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("USER %q: tasks run unprivileged", user)
	}
	var entryArgs, cmdArgs []string
	if json.Unmarshal([]byte(entry), &entryArgs) != nil || json.Unmarshal([]byte(cmd), &cmdArgs) != nil ||
		strings.Join(entryArgs, " ") != "taskotron" || strings.Join(cmdArgs, " ") != "up" {
		t.Errorf("ENTRYPOINT %s CMD %s: want [\"taskotron\"] [\"up\"], exec form", entry, cmd)
	}
	// ENV names real configuration keys, and up listens on the port exposed.
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	cfg, err := config.Load("", envList)
	if err != nil {
		t.Fatalf("the image's ENV: %v", err)
	}
	if !strings.HasSuffix(cfg.ResultsDB.Listen, ":"+expose) || !strings.HasPrefix(cfg.ResultsDB.Listen, "0.0.0.0:") || cfg.DataDir == config.Default().DataDir {
		t.Errorf("resultsdb.listen %q, data_dir %q, EXPOSE %s: up must listen on all addresses on the exposed port, data in the home folder", cfg.ResultsDB.Listen, cfg.DataDir, expose)
	}

	// What the script installs in the image is what the tasks need, and CA
	// certificates for HTTPS.
	pkgs := map[string]bool{}
	for _, pkg := range scriptTools(t, "image") {
		pkgs[pkg] = true
	}
	for cmd, pkg := range tasksNeed(t) {
		if !pkgs[pkg] {
			t.Errorf("the image lacks %s (Debian %s), which the tasks need", cmd, pkg)
		}
		delete(pkgs, pkg)
	}
	delete(pkgs, "ca-certificates")
	delete(pkgs, "bubblewrap") // the sandbox the tasks run in
	if len(pkgs) > 0 {
		t.Errorf("the image installs %v, which the tasks do not need", pkgs)
	}
}
