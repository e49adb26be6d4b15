package directives

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func init() { Register("createrepo", Func(runCreaterepo)) }

// runCreaterepo runs createrepo_c on repodir (reference §2.4) and returns
// its output; anything on stderr is an error, as libtaskotron had it.
func runCreaterepo(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "createrepo", m: params}
	dir, err := p.str("repodir", true)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(env.WorkDir, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, p.errorf("repodir %s is not a folder", dir)
	}
	bin, err := exec.LookPath("createrepo_c")
	if err != nil {
		return nil, Infra(p.errorf("createrepo_c is not installed (Debian package createrepo-c): %w", err))
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil || strings.TrimSpace(stderr.String()) != "" {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && err != nil {
			msg = err.Error()
		}
		return nil, p.errorf("createrepo_c %s: %s", dir, firstLines(msg, 5))
	}
	return stdout.String(), nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, " | ")
}
