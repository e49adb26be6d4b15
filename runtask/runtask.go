// Package runtask is libtaskotron's runtask command: it runs one formula
// here with the runner, reports the results through the reporter when asked
// (or configured to), and prints what happened. It imports runner, reporter,
// printable, config and contract; the runner itself knows nothing of delivery.
package runtask

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/printable"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/runner"
)

// Usage is the runtask command line.
const Usage = "usage: runtask -i ITEM -t TYPE [-a ARCH] [-j JOBID] [--uuid UUID] [--override VAR=VALUE]... [--report | --no-report] [--json] [-d] FORMULA"

// Help is what runtask -h prints.
var Help = Usage + `

Runs the task formula FORMULA (a runtask.yml, or the folder holding it) here,
for one item, as libtaskotron's runtask did.

  -i, --item ITEM       the item to test (an NVR, a tag, an update id, ...)
  -t, --type TYPE       its type: ` + strings.Join(ItemTypes, ", ") + `
  -a, --arch ARCH       the arch (default noarch)
  -j, --jobid JOBID     job id, for log URLs (default standalone)
  --uuid UUID           execution id, names the artifacts folder (default: a new one)
  --override VAR=VALUE  set a formula variable (repeatable)
  --json                print the execution as JSON on stdout (progress goes to stderr)
  -d, --debug           show the runner's log on the terminal
  --report              report results even when resultsdb.url is not set: to the
                        local ResultsDB at resultsdb.listen (taskotron up / resultsdb)
  --no-report           never report results

Reporting: results go to ResultsDB only when resultsdb.url is set (in the file
named by TASKOTRON_CONFIG, or TASKOTRON_RESULTSDB_URL) or --report is given;
otherwise one line says they were not reported and why. When ResultsDB cannot
be reached they are kept in the spool (send them with 'taskotron report --flush').

Exit status: 0 ok; 100 when an exitcode action says the item failed; 1 when the
run broke (bad formula, action error, timeout) or its results were refused;
2 for a bad command line. Artifacts and logs: <artifacts_dir>/<uuid>/.
`

// ItemTypes are the item types runtask accepts (reference §2.6).
var ItemTypes = []string{"koji_build", "koji_tag", "bodhi_update", "compose", "dist_git_commit", "docker_image", "git_commit", "module_build", "pull_request"}

// Args is a parsed runtask command line.
type Args struct {
	Item, Type, Arch, JobID, UUID string
	Overrides                     map[string]string
	NoReport, JSON, Debug         bool
	// Report asks for reporting even without resultsdb.url.
	Report bool
	// Formula is the formula file (a folder means its runtask.yml).
	Formula string
}

type overrideFlag map[string]string

func (o overrideFlag) String() string { return "" }

func (o overrideFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || !runner.IsIdent(k) {
		return fmt.Errorf("--override %q: want VAR=VALUE with VAR a variable name", s)
	}
	o[k] = v
	return nil
}

// ParseArgs reads libtaskotron's runtask options. Flags may come
// after the formula, and each has its long and short name.
func ParseArgs(args []string) (Args, error) {
	a := Args{Overrides: map[string]string{}}
	fs := flag.NewFlagSet("runtask", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, n := range []string{"i", "item"} {
		fs.StringVar(&a.Item, n, "", "the item to test")
	}
	for _, n := range []string{"t", "type"} {
		fs.StringVar(&a.Type, n, "", "the item type")
	}
	for _, n := range []string{"a", "arch"} {
		fs.StringVar(&a.Arch, n, "noarch", "the arch")
	}
	for _, n := range []string{"j", "jobid"} {
		fs.StringVar(&a.JobID, n, "standalone", "job id, for log URLs")
	}
	fs.StringVar(&a.UUID, "uuid", "", "execution uuid (default: a new one)")
	fs.Var(overrideFlag(a.Overrides), "override", "set a formula variable, VAR=VALUE (repeatable)")
	fs.BoolVar(&a.NoReport, "no-report", false, "do not send results to ResultsDB")
	fs.BoolVar(&a.Report, "report", false, "send results to ResultsDB even when resultsdb.url is not set")
	fs.BoolVar(&a.JSON, "json", false, "print the execution as JSON")
	fs.Bool("local", true, "run here (the only mode)")
	for _, n := range []string{"d", "debug"} {
		fs.BoolVar(&a.Debug, n, false, "show the runner's log on the terminal")
	}
	libvirt := fs.Bool("libvirt", false, "not supported")
	ssh := fs.String("ssh", "", "not supported")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return a, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch {
	case *libvirt || *ssh != "":
		return a, errors.New("--libvirt and --ssh are not supported: tasks run locally, in their own process group")
	case a.Report && a.NoReport:
		return a, errors.New("--report and --no-report contradict each other; give one")
	case len(positional) != 1:
		return a, errors.New("give exactly one formula; " + Usage)
	case a.Item == "":
		return a, errors.New("-i ITEM is required; " + Usage)
	case a.Type == "":
		return a, errors.New("-t TYPE is required; " + Usage)
	}
	known := false
	for _, t := range ItemTypes {
		known = known || t == a.Type
	}
	if !known {
		return a, fmt.Errorf("-t %q: unknown item type (want one of %s)", a.Type, strings.Join(ItemTypes, ", "))
	}
	if err := checkValues(a); err != nil {
		return a, err
	}
	a.Formula = positional[0]
	if fi, err := os.Stat(a.Formula); err == nil && fi.IsDir() {
		a.Formula = filepath.Join(a.Formula, runner.FormulaFile)
	}
	return a, nil
}

// Run is libtaskotron's runtask: it runs one formula here, prints
// progress per action (on stderr with --json, which prints the execution
// on stdout), reports the results unless told not to, and returns the exit
// status: 0 ok, 100 when an exitcode action said failure, 1 when the run
// broke, 2 for a bad command line.
func Run(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	a, err := ParseArgs(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Help)
			return 0
		}
		fmt.Fprintf(stderr, "runtask: %s\n", printable.String(err.Error()))
		return 2
	}
	progress := stdout
	if a.JSON {
		progress = stderr
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	runLog := log
	if !a.Debug {
		// The progress lines and the execution say what happened, and
		// why a run failed, once; the runner's full log is in the
		// artifacts. Its warnings (an ignored formula key, a dropped
		// artifact) are said nowhere else, and the reporter's warn about
		// retries, which are otherwise silent waits.
		runLog = slog.New(levelBand{log.Handler(), slog.LevelWarn, slog.LevelError})
		log = slog.New(levelBand{log.Handler(), slog.LevelWarn, slog.LevelError + 100})
	}
	r := runner.New(runner.Options{Config: cfg, Log: runLog, Progress: progress})
	formula, err := filepath.Abs(a.Formula)
	if err != nil {
		fmt.Fprintf(stderr, "runtask: %s\n", printable.String(err.Error()))
		return 2
	}
	in := contract.RunnerInput{Item: a.Item, ItemType: a.Type, Arch: a.Arch, UUID: a.UUID, JobID: a.JobID, Formula: formula}
	if in.UUID == "" {
		in.UUID = runner.NewUUID()
	}
	fmt.Fprintf(progress, "runtask: %s on %s (%s, %s), uuid %s\n", filepath.Base(filepath.Dir(formula)), a.Item, a.Type, a.Arch, in.UUID)
	exec, err := r.Run(ctx, in, a.Overrides)
	if err != nil {
		fmt.Fprintf(stderr, "runtask: %s\n", printable.String(err.Error()))
	}
	code := exec.ExitCode
	if exec.ExecutionStatus != contract.ExecutionOK && code == 0 {
		code = 1
	}
	switch {
	case err != nil:
		fmt.Fprintln(progress, "results not reported: the run was interrupted")
	case a.NoReport:
		fmt.Fprintln(progress, "results not reported (--no-report)")
	case cfg.ResultsDB.URL == "" && !a.Report:
		// As libtaskotron's development profile: a task author's run
		// reports nothing unless asked, rather than waiting on retries
		// against a ResultsDB that is not there.
		fmt.Fprintln(progress, "results not reported: resultsdb.url is not set (set it, or TASKOTRON_RESULTSDB_URL, or pass --report for the local ResultsDB)")
	default:
		opts := reporter.OptionsFromConfig(cfg, log)
		d, rerr := report(ctx, opts, exec)
		switch {
		case rerr != nil:
			fmt.Fprintf(stderr, "runtask: results not reported: %v\n", rerr)
			code = 1
		case d.Spooled > 0:
			fmt.Fprintf(progress, "ResultsDB at %s is unavailable: %d results kept in %s (send them with 'taskotron report --flush'; --no-report skips reporting)\n", opts.ResultsDBURL, d.Spooled, opts.SpoolDir)
		case d.Rejected > 0:
			fmt.Fprintf(stderr, "runtask: ResultsDB refused %d results (kept in %s/rejected)\n", d.Rejected, opts.SpoolDir)
			code = 1
		default:
			fmt.Fprintf(progress, "results stored in ResultsDB at %s (%d)\n", opts.ResultsDBURL, d.Stored+d.Present)
		}
		if d.CommentsSpooled > 0 {
			fmt.Fprintf(progress, "Bodhi is unavailable: %d comments kept in %s (send them with 'taskotron report --flush')\n", d.CommentsSpooled, opts.SpoolDir)
		}
		if d.CommentsRejected > 0 {
			fmt.Fprintf(stderr, "runtask: Bodhi refused %d comments (kept in %s/comments-rejected)\n", d.CommentsRejected, opts.SpoolDir)
		}
	}
	if a.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(exec); err != nil {
			fmt.Fprintf(stderr, "runtask: %s\n", printable.String(err.Error()))
			return 1
		}
		return code
	}
	printExecution(stdout, exec)
	return code
}

func report(ctx context.Context, opts reporter.Options, exec contract.Execution) (reporter.Delivery, error) {
	rep, err := reporter.New(opts)
	if err != nil {
		return reporter.Delivery{}, err
	}
	return rep.Deliver(ctx, exec)
}

func printExecution(w io.Writer, exec contract.Execution) {
	rs := append([]contract.Result(nil), exec.Results...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].CheckName < rs[j].CheckName })
	for _, r := range rs {
		line := fmt.Sprintf("%-16s %s %s (%s", r.Outcome, printable.Line(r.CheckName), printable.Line(r.Item), printable.Line(r.Type))
		if a := r.Arch.String(); a != "" {
			line += ", " + printable.Line(a)
		}
		line += ")"
		if r.Note != "" {
			line += ": " + printable.Line(r.Note)
		}
		fmt.Fprintln(w, line)
	}
	if exec.ResultsFile != "" {
		fmt.Fprintf(w, "%d results, too many to print: in %s\n", exec.NumResults(), filepath.Join(exec.Artifacts, exec.ResultsFile))
	}
	if exec.ExecutionStatus == contract.ExecutionOK {
		fmt.Fprintf(w, "execution OK, exit code %d, artifacts %s\n", exec.ExitCode, exec.Artifacts)
	} else {
		fmt.Fprintf(w, "execution NOT_OK: %s\nartifacts %s\n", printable.Line(exec.Status), exec.Artifacts)
	}
}

// levelBand passes the records from min up to, not including, max.
type levelBand struct {
	slog.Handler
	min, max slog.Level
}

func (b levelBand) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= b.min && l < b.max && b.Handler.Enabled(ctx, l)
}

func (b levelBand) WithAttrs(a []slog.Attr) slog.Handler {
	return levelBand{b.Handler.WithAttrs(a), b.min, b.max}
}

func (b levelBand) WithGroup(n string) slog.Handler {
	return levelBand{b.Handler.WithGroup(n), b.min, b.max}
}

// checkValues refuses, before anything runs or is reported, flag values
// that parse but that the runner would refuse once the run has started
// (when it has already made a CRASHED result for "unknown-task"): a blank
// item, an arch or uuid that cannot name a folder.
func checkValues(a Args) error {
	switch {
	case strings.TrimSpace(a.Item) == "":
		return fmt.Errorf("-i %q: the item is blank; %s", a.Item, Usage)
	case strings.TrimSpace(a.Item) != a.Item:
		return fmt.Errorf("-i %q: the item starts or ends with a blank", a.Item)
	case strings.IndexFunc(a.Item, unicode.IsControl) >= 0:
		return fmt.Errorf("-i %q: the item holds a control character", a.Item)
	case len(a.Item) > 4096:
		return fmt.Errorf("-i: the item is %d bytes long; at most 4096", len(a.Item))
	case a.Arch == "": // -a given empty; left out, it is noarch
		return errors.New("-a \"\": the arch is empty (leave -a out for noarch)")
	case !nameLike(a.Arch, 64, "_"):
		return fmt.Errorf("-a %q: use letters, digits, '.', '_' and '-' only, at most 64, not starting with '.' or '-'", a.Arch)
	case a.UUID != "" && !nameLike(a.UUID, 128, ""):
		return fmt.Errorf("--uuid %q: use letters, digits, '.', '_' and '-' only, at most 128, starting with a letter or digit", a.UUID)
	}
	return nil
}

// nameLike tells a value that can name a folder: letters, digits, '.', '_'
// and '-', at most max bytes, starting with a letter, a digit or one of
// first.
func nameLike(v string, max int, first string) bool {
	if v == "" || len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 && strings.IndexByte(first, c) < 0 || i > 0 && strings.IndexByte("._-", c) < 0) {
			return false
		}
	}
	return true
}
