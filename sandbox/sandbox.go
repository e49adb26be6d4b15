// Package sandbox runs task processes in Debian's bubblewrap (bwrap): each
// gets its own PID namespace (the worker's processes and their
// /proc/<pid>/environ are out of sight), its own mount view (the system
// read-only, a private /tmp, a minimal /dev, write access only to its work
// and artifacts folders) and no capabilities, while the network stays
// shared (tasks talk to Koji and Bodhi). The worker's configuration file,
// data_dir and /etc/taskotron are hidden even where they lie under a folder
// the sandbox shows.
//
// runner.sandbox chooses: auto (the default) and bwrap sandbox every task
// process and refuse to run one when bwrap cannot make a sandbox here; off
// runs tasks as the worker's own user, seeing what it sees.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/config"
)

// The values of runner.sandbox.
const (
	// Auto sandboxes with bubblewrap, the one sandbox there is today.
	Auto = "auto"
	// Bwrap names bubblewrap explicitly.
	Bwrap = "bwrap"
	// Off runs tasks unsandboxed.
	Off = "off"
)

// offHint ends every refusal: how to run without the sandbox.
const offHint = "or set runner.sandbox: off (TASKOTRON_RUNNER_SANDBOX=off) to run tasks unsandboxed, able to read what the worker reads"

// Mode checks a runner.sandbox value; empty means Auto.
func Mode(s string) (string, error) {
	switch s {
	case "", Auto:
		return Auto, nil
	case Bwrap, Off:
		return s, nil
	}
	return "", fmt.Errorf("runner.sandbox %q: want auto, bwrap or off", s)
}

var (
	hiddenMu sync.Mutex
	hidden   []string
)

// Check tells whether task processes can run as mode asks on this machine:
// nil for off, else nil only when bwrap is installed and has just made a
// sandbox. Roles call it when they start, so that a worker that could not
// run a single task refuses to start, with one line saying why and how to
// turn the sandbox off. The paths in hide (the configuration file the role
// read) are hidden from every sandbox this process makes from then on.
func Check(mode string, hide ...string) error {
	m, err := Mode(mode)
	if err != nil {
		return err
	}
	hiddenMu.Lock()
	for _, p := range hide {
		if p != "" {
			hidden = append(hidden, p)
		}
	}
	hiddenMu.Unlock()
	if m == Off {
		return nil
	}
	_, err = available(m)
	return err
}

var probed struct {
	once sync.Once
	path string
	err  error
}

// available finds bwrap and makes sure it can make a sandbox here, once
// per process.
func available(mode string) (string, error) {
	probed.once.Do(func() { probed.path, probed.err = probe("bwrap") })
	if probed.err != nil {
		return "", fmt.Errorf("task sandbox (runner.sandbox: %s): %w", mode, probed.err)
	}
	return probed.path, nil
}

// probe starts `true` in a sandbox made as for a task, without folders.
func probe(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (Debian package bubblewrap): install it, %s", name, offHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args(Spec{Dir: "/"}, []string{"true"})...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		why := firstLine(out)
		if why == "" {
			why = err.Error()
		}
		return "", fmt.Errorf("bwrap cannot make a sandbox on this machine (%s): allow user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone=1; a container needs them too), %s", why, offHint)
	}
	return path, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// Spec is what one sandboxed process sees besides the system.
type Spec struct {
	// Dir is the working folder; it must be one of the folders below or
	// inside one.
	Dir string
	// Writable folders are shown read-write, ReadOnly ones read-only, each
	// at its own path.
	Writable, ReadOnly []string
	// Hide lists files and folders that stay out of sight even inside a
	// folder the sandbox shows; ancestors of the folders above hide
	// everything but them.
	Hide []string
	// Home, when set and not inside a folder above, becomes a private
	// empty folder, so that tools that keep state in $HOME work.
	Home string
}

// Command returns the program and arguments that run argv inside the
// sandbox spec describes. The caller gives the process its environment
// (bwrap passes its own on: it must be the task's, already scrubbed, for
// the sandbox's PID 1 is bwrap and a task can read its environment).
func Command(mode string, spec Spec, argv []string) (string, []string, error) {
	m, err := Mode(mode)
	if err != nil {
		return "", nil, err
	}
	if m == Off {
		return "", nil, errors.New("sandbox.Command: runner.sandbox is off")
	}
	if len(argv) == 0 || argv[0] == "" {
		return "", nil, errors.New("empty command")
	}
	path, err := available(m)
	if err != nil {
		return "", nil, err
	}
	// The working folder must be one the task sees: showing another would
	// show what it holds.
	if d := workDir(spec); d != "/" && !under(d, absAll(spec.Writable, spec.ReadOnly)) && !under(d, systemRoots) {
		return "", nil, fmt.Errorf("working folder %s is none of the task's folders", d)
	}
	return path, args(spec, argv), nil
}

// workDir is spec.Dir, absolute; "/" when empty.
func workDir(spec Spec) string {
	if d := abs(spec.Dir); d != "" {
		return d
	}
	return "/"
}

// systemRoots are shown read-only (or as the symlinks they are, on a
// merged-/usr system): programs, libraries and /etc (resolver, CA
// certificates, rpm and Python configuration).
var systemRoots = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

// alwaysHidden are secrets of the worker or the machine found under
// systemRoots: the packaged configuration and environment files
// (deploy/systemd), and the password hashes a worker run as root could read.
var alwaysHidden = []string{"/etc/taskotron", "/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"}

// args builds bwrap's command line. Each flag's reason:
//
//	--unshare-user --disable-userns  a user namespace of its own, in which no further
//	                                 one can be made (no capabilities regained)
//	--unshare-pid                    its own PID namespace: the worker, its
//	                                 /proc/<pid>/environ and every other process are out of sight
//	--unshare-ipc --unshare-uts --unshare-cgroup-try  no System V IPC, hostname or cgroup tree shared
//	--die-with-parent                the sandbox (and so every process in it, as its PID 1
//	                                 goes) dies with the runner, even killed with SIGKILL
//	--new-session                    no TIOCSTI into the terminal of a runtask
//	--cap-drop ALL                   no capabilities, even when the worker runs as root
//	--ro-bind /usr /usr …            the system, read-only
//	--proc /proc --dev /dev          a /proc of its own PID namespace, a minimal /dev
//	--tmpfs /tmp --tmpfs /var/tmp    private scratch space
//	--tmpfs / --ro-bind /dev/null    over secrets that would otherwise show
//	--bind W W, --ro-bind R R        its folders
//	--remount-ro /                   the root and the masks read-only: only its folders
//	                                 and the scratch space are writable
//	--chdir DIR                      its working folder
//
// The network is not unshared: tasks talk to Koji, Bodhi and dist-git.
func args(spec Spec, argv []string) []string {
	a := []string{
		"--unshare-user", "--disable-userns",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL",
	}
	var sys []string
	for _, root := range systemRoots {
		fi, err := os.Lstat(root)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(root); err == nil {
				a = append(a, "--symlink", target, root)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", root, root)
			sys = append(sys, root)
		}
	}
	// A resolver configuration that is a link out of /etc (systemd-resolved)
	// is shown where it leads, or names would not resolve.
	if real, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && !under(real, sys) {
		a = append(a, "--ro-bind", real, real)
	}
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp")

	var binds []bind
	var bound []string
	add := func(p string, rw bool) {
		if p == "" {
			return
		}
		p = abs(p)
		for i, b := range binds {
			if b.path == p {
				binds[i].rw = binds[i].rw || rw
				return
			}
		}
		binds = append(binds, bind{p, rw})
		bound = append(bound, p)
	}
	for _, p := range spec.Writable {
		add(p, true)
	}
	for _, p := range spec.ReadOnly {
		add(p, false)
	}
	dir := workDir(spec)
	// Outer folders first, so that a folder inside another is shown as
	// itself (read-only inside read-write, or the reverse).
	slices.SortStableFunc(binds, func(x, y bind) int { return strings.Count(x.path, "/") - strings.Count(y.path, "/") })

	hide := hiddenPaths(spec.Hide)
	var masks []string
	mask := func(p string) {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return
		case fi.IsDir():
			a = append(a, "--tmpfs", p)
			masks = append(masks, p)
		default:
			a = append(a, "--ro-bind", "/dev/null", p)
		}
	}
	// Secrets under the system come out before the task's folders go in,
	// so that a hidden folder holding them (data_dir) hides all but them.
	for _, h := range hide {
		if under(h, sys) {
			mask(h)
		}
	}
	home := abs(spec.Home)
	if home != "" && !under(home, bound) && !under(home, sys) && !holdsAny(home, sys) {
		a = append(a, "--tmpfs", home)
	}
	for _, b := range binds {
		op := "--ro-bind"
		if b.rw {
			op = "--bind"
		}
		a = append(a, op, b.path, b.path)
	}
	// A secret inside one of the task's folders (a configuration file in
	// the task's checkout) is hidden there too; one holding a task folder
	// was hidden above.
	for _, h := range hide {
		if under(h, bound) && !holdsAny(h, bound) {
			mask(h)
		}
	}
	for _, m := range masks {
		a = append(a, "--remount-ro", m)
	}
	a = append(a, "--remount-ro", "/", "--chdir", dir, "--")
	return append(a, argv...)
}

// SecretPaths are the files and folders of cfg that a task must not see:
// data_dir (queue, databases, spool, mirror), the work and artifacts roots
// (other runs' folders), and the spool, job log, queue and SQLite databases
// wherever they are.
func SecretPaths(cfg config.Config) []string {
	cfg = cfg.Resolved()
	ps := []string{cfg.DataDir, cfg.Runner.WorkDir, cfg.Runner.ArtifactsDir, cfg.Reporter.Spool, cfg.Trigger.JobLog, cfg.QueueDir(), cfg.DeadLetterFile()}
	for _, dsn := range []string{cfg.Trigger.StateDB, cfg.ResultsDB.DB} {
		if p, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// hiddenPaths is extra with alwaysHidden, what Check was told, and the
// configuration file TASKOTRON_CONFIG names: absolute, each also where it
// leads when it is a symlink.
func hiddenPaths(extra []string) []string {
	hiddenMu.Lock()
	all := append(append(append([]string{}, alwaysHidden...), hidden...), extra...)
	hiddenMu.Unlock()
	all = append(all, os.Getenv("TASKOTRON_CONFIG"))
	var out []string
	seen := map[string]bool{}
	for _, p := range all {
		p = abs(p)
		if p == "" || p == "/" {
			continue
		}
		for _, q := range []string{p, realPath(p)} {
			if q != "" && !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	return out
}

func realPath(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

func absAll(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, p := range l {
			if p != "" {
				out = append(out, abs(p))
			}
		}
	}
	return out
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return a
}

// under tells whether p is one of roots or inside one.
func under(p string, roots []string) bool {
	for _, r := range roots {
		if within(r, p) {
			return true
		}
	}
	return false
}

// holdsAny tells whether one of ps is p or inside it.
func holdsAny(p string, ps []string) bool {
	for _, q := range ps {
		if within(p, q) {
			return true
		}
	}
	return false
}

// within tells whether p is root or inside it, by the names alone.
func within(root, p string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// bind is one of the task's folders.
type bind struct {
	path string
	rw   bool
}
