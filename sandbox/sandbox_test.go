package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
)

// TestMain doubles as a role that calls Check at start, for the tests that
// run it where the sandbox cannot work.
func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv("SANDBOX_TEST_CHECK"); ok {
		if err := Check(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("sandbox ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMode(t *testing.T) {
	for in, want := range map[string]string{"": Auto, "auto": Auto, "bwrap": Bwrap, "off": Off} {
		if got, err := Mode(in); err != nil || got != want {
			t.Errorf("Mode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"on", "Off", "yes", "namespaces"} {
		if _, err := Mode(in); err == nil || err.Error() != fmt.Sprintf("runner.sandbox %q: want auto, bwrap or off", in) {
			t.Errorf("Mode(%q): %v", in, err)
		}
	}
	if err := Check("maybe"); err == nil || !strings.Contains(err.Error(), `runner.sandbox "maybe"`) {
		t.Errorf("Check(maybe): %v", err)
	}
}

// role runs this test binary as a role that checks the sandbox at start,
// under the given command prefix and environment.
func role(t *testing.T, prefix []string, env ...string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, prefix...), self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// oneLine fails unless s is one line that names the way out.
func oneLine(t *testing.T, s string, want ...string) {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	if strings.Contains(s, "\n") {
		t.Errorf("refusal is not one line:\n%s", s)
	}
	for _, w := range append(want, "runner.sandbox: off", "TASKOTRON_RUNNER_SANDBOX=off") {
		if !strings.Contains(s, w) {
			t.Errorf("refusal %q does not say %q", s, w)
		}
	}
}

// TestCheckRefusesWithoutBwrap: a role on a machine without bubblewrap
// refuses to start, saying what to install and how to turn the sandbox
// off; with it off, it starts.
func TestCheckRefusesWithoutBwrap(t *testing.T) {
	empty := t.TempDir()
	code, out := role(t, nil, "PATH="+empty, "SANDBOX_TEST_CHECK=auto")
	if code != 2 {
		t.Fatalf("exit %d: %s", code, out)
	}
	oneLine(t, out, "runner.sandbox: auto", "bwrap is not installed", "bubblewrap")
	if code, out := role(t, nil, "PATH="+empty, "SANDBOX_TEST_CHECK=off"); code != 0 || out != "sandbox ok\n" {
		t.Fatalf("off: exit %d: %s", code, out)
	}
}

// TestCheckRefusesWhereNamespacesAreDenied: where the kernel denies bwrap
// its namespaces (here: inside a sandbox that allows no further user
// namespace, as a locked-down container would), a role refuses to start
// with bwrap's reason; with the sandbox off it starts.
func TestCheckRefusesWhereNamespacesAreDenied(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatalf("bwrap (Debian package bubblewrap) is needed: %v", err)
	}
	jail := []string{bwrap, "--unshare-user", "--disable-userns", "--dev-bind", "/", "/", "--"}
	env := "PATH=" + os.Getenv("PATH")
	code, out := role(t, jail, env, "SANDBOX_TEST_CHECK=auto")
	if code != 2 {
		t.Fatalf("exit %d: %s", code, out)
	}
	oneLine(t, out, "runner.sandbox: auto", "bwrap cannot make a sandbox on this machine (bwrap: ", "user namespaces")
	if code, out := role(t, jail, env, "SANDBOX_TEST_CHECK=off"); code != 0 || out != "sandbox ok\n" {
		t.Fatalf("off: exit %d: %s", code, out)
	}
	// And here, outside that jail, the same check passes.
	if code, out := role(t, nil, env, "SANDBOX_TEST_CHECK=auto"); code != 0 || out != "sandbox ok\n" {
		t.Fatalf("here: exit %d: %s", code, out)
	}
}

// sh runs a shell script in a sandbox made from spec and returns what it
// printed (stdout and stderr) and its exit status.
func sh(t *testing.T, spec Spec, script string, args ...string) (string, int) {
	t.Helper()
	name, a, err := Command(Auto, spec, append([]string{"sh", "-c", script, "sh"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, a...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + spec.Home}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestWhatASandboxShows: its folders read-write or read-only as asked, the
// hidden files and folders empty even inside them or under the system, a
// private /tmp and $HOME, and nothing else writable.
func TestWhatASandboxShows(t *testing.T) {
	data := t.TempDir()
	work := filepath.Join(data, "work", "u1", "work")
	arts := filepath.Join(data, "artifacts", "u1")
	task := t.TempDir()
	home := filepath.Join(t.TempDir(), "home")
	for _, d := range []string{work, arts, filepath.Join(data, "spool"), home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(data, "spool", "post.json"), "SECRET-SPOOL")
	write(filepath.Join(data, "resultsdb.sqlite"), "SECRET-DB")
	write(filepath.Join(task, "run.sh"), "echo task\n")
	write(filepath.Join(task, "taskotron.yaml"), "token: SECRET-CONFIG")
	write(filepath.Join(home, ".netrc"), "SECRET-HOME")
	spec := Spec{
		Dir:      task,
		Writable: []string{work, arts},
		ReadOnly: []string{task},
		Hide:     []string{data, filepath.Join(task, "taskotron.yaml")},
		Home:     home,
	}
	cases := []struct {
		script string
		want   string // printed
		code   int
	}{
		{`cat run.sh`, "echo task\n", 0},
		// Masked with /dev/null from a mount without devices: unreadable.
		{`cat taskotron.yaml 2>/dev/null; echo $?`, "1\n", 0},
		{`ls -A "$1"`, "artifacts\nwork\n", 0},
		{`ls -A "$1/work"`, "u1\n", 0},
		{`cat "$1/spool/post.json" "$1/resultsdb.sqlite" 2>/dev/null; echo $?`, "1\n", 0},
		{`cat ~/.netrc 2>/dev/null; ls -A ~; touch ~/state && echo home-writable`, "home-writable\n", 0},
		{`echo w > "$2/f" && echo a > "$3/f" && cat "$2/f" "$3/f"`, "w\na\n", 0},
		{`touch run2.sh 2>/dev/null || echo task-read-only`, "task-read-only\n", 0},
		{`for p in /usr/x /etc/x /x /var/x /proc/x; do touch "$p" 2>/dev/null && echo "wrote $p"; done; echo done`, "done\n", 0},
		// Under the private /tmp here, so writable, but not the host's.
		{`touch "$1/x" "$1/work/x" "$1/spool/x" 2>/dev/null; echo done`, "done\n", 0},
		{`echo tmp > /tmp/sbx-private && cat /tmp/sbx-private`, "tmp\n", 0},
		{`cat /etc/shadow 2>/dev/null | wc -c`, "0\n", 0},
		// Nothing but bwrap's minimal /dev (console only with a terminal).
		{`ls /dev | grep -vxE 'console|core|fd|full|null|ptmx|pts|random|shm|stderr|stdin|stdout|tty|urandom|zero'; ls /dev | wc -l`, "14\n", 0},
	}
	for _, c := range cases {
		out, code := sh(t, spec, c.script, data, work, arts)
		if out != c.want || code != c.code {
			t.Errorf("%s\n  printed %q, exit %d; want %q, exit %d", c.script, out, code, c.want, c.code)
		}
	}
	if _, err := os.Stat("/tmp/sbx-private"); err == nil {
		os.Remove("/tmp/sbx-private")
		t.Error("the sandbox's /tmp is the host's")
	}
	for _, p := range []string{filepath.Join(data, "x"), filepath.Join(data, "work", "x"), filepath.Join(data, "spool", "x")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the sandbox wrote %s on the host", p)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "state")); err == nil {
		t.Error("the sandbox's $HOME is the host's")
	}
	if got, _ := os.ReadFile(filepath.Join(work, "f")); string(got) != "w\n" {
		t.Errorf("work folder on the host: %q", got)
	}
	// A working folder that is none of the task's would show what it holds.
	if _, _, err := Command(Auto, Spec{Dir: data, Writable: []string{work}}, []string{"true"}); err == nil || !strings.Contains(err.Error(), "working folder "+data+" is none of the task's folders") {
		t.Errorf("working folder outside: %v", err)
	}
}

// TestSecretPaths: data_dir and what lives outside it (an absolute spool,
// SQLite databases) are hidden; nothing of a PostgreSQL DSN is taken for a
// path.
func TestSecretPaths(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = "/srv/taskotron"
	cfg.Reporter.Spool = "/var/spool/taskotron"
	cfg.ResultsDB.DB = "postgres://u:pw@db/resultsdb"
	cfg.Trigger.StateDB = "sqlite:/var/lib/trigger.sqlite"
	got := strings.Join(SecretPaths(cfg), " ")
	for _, want := range []string{"/srv/taskotron", "/srv/taskotron/work", "/srv/taskotron/artifacts", "/var/spool/taskotron", "/var/lib/trigger.sqlite", "/srv/taskotron/queue"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	if strings.Contains(got, "postgres") || strings.Contains(got, "pw@") {
		t.Errorf("a DSN taken for a path: %s", got)
	}
}
