package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/runner/formula"
)

// provision is one thing a Fedora package in environment.rpm gives a task,
// as a Debian machine provides it: a command in PATH, or a Python module
// the python directive's interpreter (runner.python) can import.
type provision struct {
	Command      string
	PythonModule string
	// Debian is the package that provides it.
	Debian string
}

// debianProvides maps the Fedora package names formulas put in
// environment.rpm to what the task needs of each on a Debian worker.
// libtaskotron dnf-installed them before the run; this runner installs
// nothing (a task runs unprivileged) and checks instead, so that a missing
// tool ends the job ABORTED with its Debian package named, not CRASHED deep
// in a script. scripts/env.sh installs the same packages (a test checks).
var debianProvides = map[string][]provision{
	// Fedora's rpm has rpm2cpio; Debian's rpm depends on the rpm2cpio package.
	"rpm":          {{Command: "rpm", Debian: "rpm"}, {Command: "rpm2cpio", Debian: "rpm2cpio"}},
	"rpm-build":    {{Command: "rpmbuild", Debian: "rpm"}},
	"cpio":         {{Command: "cpio", Debian: "cpio"}},
	"rpmlint":      {{Command: "rpmlint", Debian: "rpmlint"}},
	"createrepo_c": {{Command: "createrepo_c", Debian: "createrepo-c"}},
	"git":          {{Command: "git", Debian: "git"}},
	"python3":      {{Command: "python3", Debian: "python3"}},
	"python3-rpm":  {{PythonModule: "rpm", Debian: "python3-rpm"}},
	// rpm-python is the 2016 name (the reference's python-versions formula).
	"rpm-python":   {{PythonModule: "rpm", Debian: "python3-rpm"}},
	"python3-dnf":  {{PythonModule: "dnf", Debian: "python3-dnf"}},
	"python3-yaml": {{PythonModule: "yaml", Debian: "python3-yaml"}},
}

// environmentRPMs reads environment.rpm: a list of names (or one name).
func environmentRPMs(f *formula.Formula) ([]string, error) {
	v, ok := f.Environment["rpm"]
	if !ok || v == nil {
		return nil, nil
	}
	bad := fmt.Errorf("%s: environment.rpm must be a list of package names or file paths, not %T", f.File, v)
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		names := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return nil, bad
			}
			names = append(names, s)
		}
		return names, nil
	}
	return nil, bad
}

// missingEnvironment checks, before the first action, that this machine has
// what environment.rpm asks for: the mapped command or Python module, or the
// file for an entry that is a path (libtaskotron took both). A name with no
// known Debian equivalent is logged and not checked: the task may not need
// it here. The error is one line naming each thing missing and the Debian
// packages to install; nil when nothing is.
func (x *run) missingEnvironment(ctx context.Context, f *formula.Formula) error {
	names, err := environmentRPMs(f)
	if err != nil {
		return err
	}
	var lacks, pkgs []string
	seenPkg := map[string]bool{}
	for _, name := range names {
		if strings.HasPrefix(name, "/") {
			if _, err := os.Stat(name); err != nil {
				lacks = append(lacks, fmt.Sprintf("%s (no such file)", name))
			}
			continue
		}
		provs, known := debianProvides[name]
		if !known {
			x.log.Warn("environment.rpm: no Debian equivalent known, not checked", "rpm", name)
			continue
		}
		for _, p := range provs {
			why := p.check(ctx, x.r.opts.Config)
			if why == "" {
				continue
			}
			lacks = append(lacks, fmt.Sprintf("%s (%s)", name, why))
			if !seenPkg[p.Debian] {
				seenPkg[p.Debian] = true
				pkgs = append(pkgs, p.Debian)
			}
		}
	}
	if len(lacks) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: environment.rpm: this machine lacks %s", f.File, strings.Join(lacks, ", "))
	if len(pkgs) > 0 {
		sort.Strings(pkgs)
		word := "package"
		if len(pkgs) > 1 {
			word = "packages"
		}
		msg += fmt.Sprintf("; install the Debian %s: apt-get install %s", word, strings.Join(pkgs, " "))
	}
	return &missingError{msg: msg}
}

// check says why p is not there, or "" when it is.
func (p provision) check(ctx context.Context, cfg config.Config) string {
	if p.Command != "" {
		if _, err := exec.LookPath(p.Command); err != nil {
			return "no " + p.Command + " command in PATH"
		}
		return ""
	}
	interp := cfg.Runner.Python
	if interp == "" {
		interp = "python3"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The module name comes from the table above, never from the formula.
	cmd := exec.CommandContext(ctx, interp, "-c", "import "+p.PythonModule)
	// The interpreter sees what a task's process sees (PYTHONPATH is not
	// passed unless runner.env_allowlist names it).
	cmd.Env = (&directives.Env{Config: cfg}).ProcessEnv(nil)
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("%s cannot import the Python module %s", interp, p.PythonModule)
	}
	return ""
}

// missingError is a task's tool missing on this machine. It ends the job
// ABORTED (the package is not at fault) but is no infrastructure error that
// gets retried: the worker's backoff is minutes, installing a package is an
// administrator's act, and every worker of an arch runs the same image, so
// another attempt would only hold a slot and report the same thing later.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }
