package fakes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/fakes"
	"github.com/taskotron-go/taskotron/resultsdb/resultsdbtest"
	"github.com/taskotron-go/taskotron/runtask"
)

// The python-versions task's checks, as a packager reads them in ResultsDB.
var pyverChecks = []string{"two_three", "naming_scheme", "requires_naming_scheme", "executables",
	"unversioned_shebangs", "python_usage"}

// pyverWant is what a packager should see for one testcase: its outcome
// and words its note must (and must not) hold.
type pyverWant struct {
	outcome string
	note    []string
	notNote []string
}

// Each fixture build in fixtures/rpms that python-versions knows about,
// run with runtask (the command task authors run) against the doubles,
// reported to a real ResultsDB and read back from its API. A check a build
// is not about must pass it.
func TestPythonVersionsTask(t *testing.T) {
	set, err := fakes.Start("../fixtures", fakes.AnyPort, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	dbURL := resultsdbtest.Start(t)
	cfg := pyverConfig(t, set)
	cfg.ResultsDB.URL = dbURL + "/api/v2.0"

	for _, c := range []struct {
		nvr  string
		exit int
		want map[string]pyverWant // by check; "" is the overall result
	}{
		{"pyboth-2.0-1.fc40", 100, map[string]pyverWant{
			"":                     {"FAILED", []string{"two_three, unversioned_shebangs, python_usage"}, nil},
			"two_three":            {"FAILED", []string{"requires both Python 2 and Python 3: pyboth-2.0-1.fc40.noarch.rpm"}, nil},
			"unversioned_shebangs": {"FAILED", []string{"/usr/share/pyboth/legacy (pyboth-2.0-1.fc40.noarch.rpm)"}, nil},
			// Its #!/usr/bin/python script makes rpm require /usr/bin/python.
			"python_usage": {"FAILED", []string{"/usr/bin/python required by pyboth-2.0-1.fc40.noarch.rpm"}, []string{"during the build"}},
		}},
		{"pythree-3.1-1.fc40", 0, map[string]pyverWant{
			"": {"PASSED", []string{"all 6 checks passed"}, nil},
		}},
		{"pyname-1.0-1.fc40", 100, map[string]pyverWant{
			"": {"FAILED", []string{"failed: naming_scheme"}, nil},
			"naming_scheme": {"FAILED", []string{
				"pyname-1.0-1.fc40 (python3-pyname exists: name this one python2-pyname)",
				"python-pyname-legacy-1.0-1.fc40 (no Python version in the name: name it python2-pyname-legacy)"},
				[]string{"python3-pyname-1.0-1.fc40"}},
			// Two Python 2 RPMs beside one Python 3 RPM: not fully ported, not compared.
			"executables": {"PASSED", []string{"not compared"}, nil},
		}},
		{"pyreqs-1.0-1.fc40", 100, map[string]pyverWant{
			"": {"FAILED", []string{"failed: requires_naming_scheme"}, nil},
			"requires_naming_scheme": {"FAILED", []string{
				"pyreqs-1.0-1.fc40 BuildRequires python-devel", "python3-pyreqs-1.0-1.fc40 Requires python-six"},
				// Its own subpackage and a name Fedora keeps unversioned are fine.
				[]string{"python-pyreqs-common", "python-rpm-macros", "python3-devel"}},
		}},
		{"pyexec-1.0-1.fc40", 100, map[string]pyverWant{
			"":            {"FAILED", []string{"failed: executables"}, nil},
			"executables": {"FAILED", []string{"executables only in Python 2 RPMs: python2-pyexec-1.0-1.fc40 (/usr/bin/pyexec)"}, nil},
		}},
		{"pyusage-1.0-1.fc40", 100, map[string]pyverWant{
			"":             {"FAILED", []string{"failed: python_usage"}, nil},
			"python_usage": {"FAILED", []string{"/usr/bin/python run during the build on noarch"}, []string{"required by"}},
		}},
		{"pymangle-1.0-1.fc40", 100, map[string]pyverWant{
			"": {"FAILED", []string{"failed: unversioned_shebangs"}, nil},
			// The RPM holds the mangled, versioned shebang: only build.log tells.
			"unversioned_shebangs": {"FAILED", []string{"mangled during the build on noarch (/usr/bin/pymangle)"}, []string{"shebang in /usr/bin"}},
		}},
		{"pyclean-1.0-1.fc40", 0, map[string]pyverWant{
			"":            {"PASSED", []string{"all 6 checks passed"}, nil},
			"executables": {"PASSED", []string{"the Python 3 RPMs ship executables too"}, nil},
		}},
	} {
		t.Run(c.nvr, func(t *testing.T) {
			code, exec, out := runtaskPyver(t, cfg, c.nvr, "--report")
			if code != c.exit {
				t.Errorf("runtask exit status %d, want %d\n%s", code, c.exit, out)
			}
			if exec.ExecutionStatus != contract.ExecutionOK || !strings.Contains(out, "results stored in ResultsDB") {
				t.Fatalf("execution %s (%s)\n%s", exec.ExecutionStatus, exec.Status, out)
			}
			for _, check := range append([]string{""}, pyverChecks...) {
				testcase := "dist.python-versions"
				artifact := "output.log"
				if check != "" {
					testcase += "." + check
					artifact = "python-versions." + check + ".log"
				}
				w, ok := c.want[check]
				if !ok {
					w = pyverWant{outcome: "PASSED"}
				}
				got := queryResults(t, dbURL, url.Values{"item": {c.nvr}, "testcases": {testcase}})
				if len(got) != 1 {
					t.Errorf("%s: %d results in ResultsDB, want 1", testcase, len(got))
					continue
				}
				r := got[0]
				if r.Outcome != w.outcome {
					t.Errorf("%s = %s (%q), want %s", testcase, r.Outcome, r.Note, w.outcome)
				}
				for _, s := range w.note {
					if !strings.Contains(r.Note, s) {
						t.Errorf("%s note %q lacks %q", testcase, r.Note, s)
					}
				}
				for _, s := range w.notNote {
					if strings.Contains(r.Note, s) {
						t.Errorf("%s note %q must not name %q", testcase, r.Note, s)
					}
				}
				if strings.Join(r.Data["arch"], ",") != "noarch,src" || strings.Join(r.Data["type"], ",") != "koji_build" {
					t.Errorf("%s data = %v, want arch noarch,src and type koji_build", testcase, r.Data)
				}
				if !strings.HasSuffix(r.RefURL, "/"+exec.UUID+"/"+artifact) {
					t.Errorf("%s links %q, want its artifact %s", testcase, r.RefURL, artifact)
				}
				// The artifact says what the check found, under its outcome.
				body, err := os.ReadFile(filepath.Join(exec.Artifacts, artifact))
				if err != nil {
					t.Errorf("%s artifact: %v", testcase, err)
				} else if check != "" && !strings.Contains(string(body), "== python-versions."+check+" for "+c.nvr+": "+w.outcome+"\n"+r.Note+"\n") {
					t.Errorf("%s artifact does not start with its outcome and note:\n%s", testcase, body)
				}
			}
		})
	}
}

// What each failing check found is in its artifact, one line per finding,
// and output.log holds every check.
func TestPythonVersionsArtifacts(t *testing.T) {
	for _, c := range []struct{ nvr, check, line string }{
		{"pyboth-2.0-1.fc40", "two_three", "  * Python 3: python(abi) = 3.12\n"},
		{"pyname-1.0-1.fc40", "naming_scheme", "python-pyname-legacy-1.0-1.fc40: requires Python 2, no Python version in the name"},
		{"pyreqs-1.0-1.fc40", "requires_naming_scheme", "pyreqs-1.0-1.fc40 BuildRequires: python-devel\n"},
		{"pyexec-1.0-1.fc40", "executables", "python2-pyexec-1.0-1.fc40: /usr/bin/pyexec\n"},
		{"pyusage-1.0-1.fc40", "python_usage", "build.log of noarch: DEPRECATION WARNING: python2 invoked with /usr/bin/python."},
		{"pymangle-1.0-1.fc40", "unversioned_shebangs", "build.log of noarch: *** WARNING: mangling shebang in /usr/bin/pymangle from #!/usr/bin/python to #!/usr/bin/python2."},
	} {
		exec := runTask(t, "python-versions", c.nvr, "koji_build")
		for _, name := range []string{"python-versions." + c.check + ".log", "output.log"} {
			body, err := os.ReadFile(filepath.Join(exec.Artifacts, name))
			if err != nil {
				t.Fatalf("%s: %v", c.nvr, err)
			}
			if !strings.Contains(string(body), c.line) {
				t.Errorf("%s %s lacks %q:\n%s", c.nvr, name, c.line, body)
			}
			if !strings.Contains(string(body), "More: https://") {
				t.Errorf("%s %s does not say where the guideline is:\n%s", c.nvr, name, body)
			}
		}
		all, _ := os.ReadFile(filepath.Join(exec.Artifacts, "output.log"))
		for _, check := range pyverChecks {
			if !strings.Contains(string(all), "== python-versions."+check+" for "+c.nvr+": ") {
				t.Errorf("%s output.log has no section for %s", c.nvr, check)
			}
		}
	}
}

// A build log Koji cannot give leaves python_usage unable to look at the
// build: INFO naming the arch, not a pass, and not a failure of the item.
func TestPythonVersionsMissingBuildLog(t *testing.T) {
	exec := runTaskWith(t, "python-versions", "pythree-3.1-1.fc40", "koji_build", func(s *fakes.Set, _ *config.Config) {
		s.Koji.DropLog("pythree-3.1-1.fc40")
	})
	if exec.ExecutionStatus != contract.ExecutionOK {
		t.Fatalf("execution %s: %s", exec.ExecutionStatus, exec.Status)
	}
	got := byCheck(exec.Results)
	usage := got["dist.python-versions.python_usage pythree-3.1-1.fc40"]
	if usage.Outcome != contract.Info || !strings.Contains(usage.Note, "no build log for noarch") {
		t.Errorf("python_usage = %s %q, want INFO naming noarch", usage.Outcome, usage.Note)
	}
	if o := got["dist.python-versions pythree-3.1-1.fc40"]; o.Outcome != contract.Info || !strings.Contains(o.Note, "python_usage") {
		t.Errorf("overall = %s %q, want INFO naming python_usage", o.Outcome, o.Note)
	}
	if exec.ExitCode != 0 {
		t.Errorf("exit code %d: INFO is not a failure", exec.ExitCode)
	}
}

// Run by hand on something that is not an RPM, the script says so in one
// line and exits non-zero, with no traceback.
func TestPythonVersionsScriptBadInput(t *testing.T) {
	script, _ := filepath.Abs("../tasks/python-versions/python_versions_check.py")
	notRPM := filepath.Join(t.TempDir(), "notes.txt")
	broken := filepath.Join(t.TempDir(), "broken-1.0-1.fc40.noarch.rpm")
	os.WriteFile(notRPM, []byte("x"), 0o644)
	os.WriteFile(broken, []byte("not an rpm"), 0o644)
	for _, c := range []struct{ arg, want string }{
		{notRPM, "python-versions: " + notRPM + " is neither an RPM nor a build.log"},
		{broken, "python-versions: rpm cannot read " + broken + ": "},
	} {
		cmd := exec.Command("python3", script, "x-1-1.fc40", t.TempDir(), c.arg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%s: %v, want exit status 2", c.arg, err)
		}
		line := strings.TrimSpace(stderr.String())
		if !strings.HasPrefix(line, c.want) || strings.Contains(line, "\n") {
			t.Errorf("stderr = %q, want one line starting %q", line, c.want)
		}
	}
}

func pyverConfig(t *testing.T, set *fakes.Set) config.Config {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Runner.ArtifactsDir = filepath.Join(dir, "artifacts")
	cfg.Runner.WorkDir = filepath.Join(dir, "work")
	cfg.Runner.ArtifactsURL = "https://taskotron.example.org/artifacts"
	cfg.Koji.YumRepoInfo = "../fixtures/koji/yumrepoinfo.conf"
	set.Apply(&cfg)
	return cfg
}

// runtaskPyver runs the task as `runtask -i NVR -t koji_build --json` does
// and returns its exit status, the execution and what it printed.
func runtaskPyver(t *testing.T, cfg config.Config, nvr string, extra ...string) (int, contract.Execution, string) {
	t.Helper()
	formula, _ := filepath.Abs("../tasks/python-versions/runtask.yml")
	args := append([]string{"-i", nvr, "-t", "koji_build", "-a", "noarch", "--json"}, extra...)
	var stdout, stderr bytes.Buffer
	code := runtask.Run(context.Background(), append(args, formula), cfg, nil, &stdout, &stderr)
	var exec contract.Execution
	if err := json.Unmarshal(stdout.Bytes(), &exec); err != nil {
		t.Fatalf("runtask --json on %s: %v\n%s\n%s", nvr, err, stdout.String(), stderr.String())
	}
	return code, exec, stderr.String()
}
