// Package runner executes tasks: it checks a task out, reads its formula,
// checks that the machine has what its environment.rpm names, and runs the
// actions one after another through the directives, keeping logs
// and artifacts in <artifacts_dir>/<uuid>/ (reference §2.3, §2.9). The same
// code runs a job for a worker and a task for its author (runtask). It knows
// nothing of queues or delivery: it imports checkout, directives, results
// (what task output means), sandbox (whether task processes are boxed),
// config and contract.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/results"
	"github.com/taskotron-go/taskotron/runner/formula"
	"github.com/taskotron-go/taskotron/sandbox"
)

// Options configure a Runner.
type Options struct {
	Config config.Config
	// Checkout fetches tasks for RunJob; Run does not need it.
	Checkout *checkout.Checkout
	Log      *slog.Logger
	// Progress, when set, gets one line per action as it runs.
	Progress io.Writer
	// OnAction, when set, hears of each action a run starts (and of ""
	// when it is over).
	OnAction func(uuid, action string)
}

// Runner runs tasks. It is safe for concurrent use.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	current map[string]string // execution uuid -> the action its run is in
}

// New makes a Runner.
func New(opts Options) *Runner {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Config = opts.Config.Resolved()
	return &Runner{opts: opts, log: log, current: map[string]string{}}
}

// ErrInterrupted is returned when the caller's context ended before the run
// did (the worker is stopping): the run's outcome means nothing and the job
// should be handed back.
var ErrInterrupted = errors.New("run interrupted")

// FormulaFile is the formula's name in a task repository.
const FormulaFile = "runtask.yml"

// LogDir is the folder inside an execution's artifacts where the runner
// keeps its own files: taskotron.log, each action's stdout and stderr, and
// execution.json.
const LogDir = "taskotron"

// ResultsFile, in LogDir, holds the results of a run that had more than it
// keeps in memory (directives.MemoryResults): one JSON result per line (see
// contract.Execution.ResultsFile); DetailsFile, beside it, their details.
const (
	ResultsFile = "results.jsonl"
	DetailsFile = "results-details.jsonl"
)

var uuidRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewUUID makes an execution id the way libtaskotron did for standalone
// runs (a UTC timestamp), with random digits so two runs never share one.
func NewUUID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	ts := strings.Replace(time.Now().UTC().Format("20060102_150405.000000"), ".", "_", 1)
	return ts + "_" + hex.EncodeToString(b[:])
}

func (r *Runner) artifactsRoot() string { return r.opts.Config.Runner.ArtifactsDir }

func (r *Runner) workRoot() string { return r.opts.Config.Runner.WorkDir }

// sandboxed tells whether every task process runs in bubblewrap.
func (r *Runner) sandboxed() bool {
	m, err := sandbox.Mode(r.opts.Config.Runner.Sandbox)
	return err == nil && m != sandbox.Off
}

// triedBefore tells whether an earlier attempt of the execution left its
// artifacts or work folder here.
func (r *Runner) triedBefore(artifacts, uuid string) bool {
	for _, p := range []string{artifacts, filepath.Join(r.workRoot(), uuid)} {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// RunJob checks the job's task out and runs its formula. A checkout that
// fails ends the execution NOT_OK with an ABORTED result, like any other
// infrastructure failure.
func (r *Runner) RunJob(ctx context.Context, job contract.Job) (contract.Execution, error) {
	in := contract.RunnerInput{Item: job.Item, ItemType: job.ItemType, UUID: job.UUID, Arch: job.Arch, TaskName: job.TaskName, JobID: job.UUID}
	if r.opts.Checkout == nil {
		return r.failBeforeStart(in, directives.Infra(errors.New("no task checkout configured"))), nil
	}
	var dir string
	var err error
	if job.GitRepo != "" {
		dir, err = r.opts.Checkout.GetRepo(ctx, job.GitRepo, job.GitBranch)
	} else {
		dir, err = r.opts.Checkout.Get(ctx, job.TaskName, job.GitBranch)
	}
	if err != nil {
		if ctx.Err() != nil {
			exec := r.failBeforeStart(in, err)
			return exec, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		err = fmt.Errorf("task checkout: %w", err)
		if !errors.Is(err, checkout.ErrNotFound) && !errors.Is(err, checkout.ErrNotAllowed) {
			// Missing or refused is a configuration problem: ABORTED, but
			// trying again cannot help. Anything else may pass.
			err = directives.Infra(err)
		}
		// The run still gets its artifacts folder and log, saying why.
		return r.run(ctx, in, nil, runSetup{startErr: err})
	}
	in.Formula = filepath.Join(dir, FormulaFile)
	in.TaskOrigin = r.opts.Checkout.Origin(job.TaskName, job.GitRepo)
	// Errors name the formula as the task author knows it, not by its path
	// in the checkout cache (which ends in the commit's tree).
	in.FormulaName = job.TaskName + "@" + shortCommit(dir) + "/" + FormulaFile
	// Each job works on its own copy of the task: the checkout is shared.
	return r.run(ctx, in, nil, runSetup{copyTask: true})
}

// shortCommit is the first 12 characters of the tree folder's name, which
// the checkout names after its commit.
func shortCommit(dir string) string {
	base := filepath.Base(dir)
	if len(base) > 12 {
		return base[:12]
	}
	return base
}

// failBeforeStart builds the execution of a run that could not start.
func (r *Runner) failBeforeStart(in contract.RunnerInput, err error) contract.Execution {
	exec := contract.Execution{UUID: in.UUID, Item: in.Item, ItemType: in.ItemType, TaskName: in.TaskName, Arch: in.Arch}
	r.fail(&exec, in.TaskName, "", err)
	return exec
}

// fail marks the execution NOT_OK.
func (r *Runner) fail(exec *contract.Execution, check, namespace string, err error) {
	setFailure(exec, check, namespace, err, "")
}

// setFailure marks the execution NOT_OK (see results.Broken): outcome if
// given, else ABORTED for an infrastructure failure or a run that was
// stopped (a timeout, a signal), CRASHED otherwise. Infra tells the worker
// that another attempt may pass.
func setFailure(exec *contract.Execution, check, namespace string, err error, outcome contract.Outcome) {
	if outcome == "" {
		outcome = contract.Crashed
		if directives.IsInfra(err) || stopped(err) {
			outcome = contract.Aborted
		}
	}
	exec.Infra = directives.IsInfra(err)
	results.Broken(exec, check, namespace, outcome, err.Error())
}

// stopped tells a run that was stopped (a timeout, a signal, a cancelled
// request) from one that failed by itself.
func stopped(err error) bool {
	return directives.IsStopped(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Run executes the formula in.Formula (its folder is the task's checkout)
// for one item. The returned execution is complete whatever happened:
// OK with the exit code the exitcode actions chose, or NOT_OK with the
// reason in Status. The error is ErrInterrupted, when ctx ended first, or nil.
func (r *Runner) Run(ctx context.Context, in contract.RunnerInput, overrides map[string]string) (contract.Execution, error) {
	return r.run(ctx, in, overrides, runSetup{})
}

// runSetup says how a run starts.
type runSetup struct {
	// copyTask runs the task from a private copy of its folder.
	copyTask bool
	// startErr ends the run before it starts (the checkout failed).
	startErr error
}

func (r *Runner) run(ctx context.Context, in contract.RunnerInput, overrides map[string]string, setup runSetup) (contract.Execution, error) {
	if in.UUID == "" {
		in.UUID = NewUUID()
	}
	if in.Arch == "" {
		in.Arch = "noarch"
	}
	exec := contract.Execution{UUID: in.UUID, Item: in.Item, ItemType: in.ItemType, TaskName: in.TaskName, Arch: in.Arch, Results: []contract.Result{}}
	if err := checkInput(in); err != nil {
		r.fail(&exec, in.TaskName, "", err)
		return exec, nil
	}
	artifacts, err := filepath.Abs(filepath.Join(r.artifactsRoot(), in.UUID))
	if err != nil {
		r.fail(&exec, in.TaskName, "", directives.Infra(err))
		return exec, nil
	}
	exec.Artifacts = artifacts
	// A job that runs again (its worker died) starts from a clean folder,
	// with nothing of the earlier attempt still running. An attempt makes
	// its folders before it starts a process, so where neither is here no
	// earlier attempt can be writing into them: the /proc scan, the
	// costliest step of a short run, is spared.
	leftovers := 0
	if r.triedBefore(artifacts, in.UUID) {
		leftovers = killLeftovers(in.UUID)
	}
	if err := os.RemoveAll(artifacts); err != nil {
		r.fail(&exec, in.TaskName, "", directives.Infra(fmt.Errorf("artifacts folder: %w", err)))
		return exec, nil
	}
	logDir, err := openLogDir(artifacts)
	if err != nil {
		r.fail(&exec, in.TaskName, "", directives.Infra(fmt.Errorf("artifacts folder: %w", err)))
		return exec, nil
	}
	defer logDir.Close()
	logFile, err := createIn(logDir, "taskotron.log")
	if err != nil {
		r.fail(&exec, in.TaskName, "", directives.Infra(fmt.Errorf("runner log: %w", err)))
		return exec, nil
	}
	defer logFile.Close()
	runLog := slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(fanout{runLog, r.log.Handler()}).With("uuid", in.UUID)

	if leftovers > 0 {
		log.Warn("killed processes an earlier attempt of this execution left running", "count", leftovers)
	}
	run := &run{r: r, in: in, exec: &exec, log: log, runLog: slog.New(runLog).With("uuid", in.UUID), artifacts: artifacts, logDir: logDir, copyTask: setup.copyTask}
	defer run.closeProgress()
	if setup.startErr != nil {
		log.Error("run cannot start", "item", in.Item, "type", in.ItemType, "task", in.TaskName, "error", setup.startErr)
		outcome := contract.Outcome("")
		if !directives.IsInfra(setup.startErr) {
			outcome = contract.Aborted
		}
		setFailure(&exec, in.TaskName, "", setup.startErr, outcome)
	} else {
		run.execute(ctx, overrides)
		// A process that left its process group (setsid) outlives the
		// group kill; it must not go on after its run. In the sandbox none
		// can: each process's PID namespace is emptied by the kernel when
		// it ends (bwrap's PID 1 goes).
		if !r.sandboxed() {
			if n := killLeftovers(in.UUID); n > 0 {
				log.Warn("killed processes the task left running outside its process group", "count", n)
			}
		}
	}
	exec.Results = sanitizeArtifacts(exec.Results, artifacts, log) // a spilled run's were, as they were copied (takeResults)
	removeOutsideLinks(artifacts, log)

	if raw, err := json.MarshalIndent(exec, "", "  "); err == nil {
		if err := writeFileIn(logDir, "execution.json", raw); err != nil {
			log.Error("execution.json not written", "error", err)
		}
	}
	log.Info("run finished", "execution_status", exec.ExecutionStatus, "status", exec.Status, "exit_code", exec.ExitCode, "results", exec.NumResults())
	if ctx.Err() != nil {
		return exec, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	return exec, nil
}

// run is the state of one execution.
type run struct {
	r    *Runner
	in   contract.RunnerInput
	exec *contract.Execution
	log  *slog.Logger
	// runLog writes to the run's own log only: each action's start and
	// end, which the process log (a worker's, with hundreds of jobs a
	// minute) does without.
	runLog    *slog.Logger
	artifacts string
	// logDir is the runner's folder in the artifacts (LogDir), opened
	// before the task ran: its files are made through it.
	logDir *os.Root
	env    *directives.Env
	// copyTask runs the task from a private copy of its folder.
	copyTask bool
	// progressFile is the run's progress file (progressFile), made at its
	// first action.
	progressFile *os.File
}

// takeResults puts the run's results in the execution. Results the run
// spilled (more than it holds in memory) are moved from its spill files to
// the artifacts (ResultsFile, DetailsFile): the run's folder, where the
// spill is, goes when the run ends. Where a result names an artifact, the
// results file is rewritten a result at a time instead, each artifact
// checked as sanitizeArtifacts does. Its error is the infrastructure's.
func (x *run) takeResults() error {
	if err := x.env.TakeResults(x.exec); err != nil {
		return directives.Infra(err)
	}
	spill, detailsSpill := x.exec.ResultsFile, x.exec.DetailsFile
	if spill == "" {
		return nil
	}
	defer os.Remove(spill)
	defer os.Remove(detailsSpill)
	lost := func(err error) error {
		// The run ends broken on the infrastructure, with a terminal
		// result instead.
		x.exec.ResultsFile, x.exec.DetailsFile, x.exec.ResultCount = "", "", 0
		return directives.Infra(fmt.Errorf("results file: %w", err))
	}
	if x.env.SpilledArtifacts() {
		// The details are as they were; only the results name artifacts.
		f, err := createIn(x.logDir, ResultsFile)
		if err != nil {
			return lost(err)
		}
		w := results.NewResultWriter(f, io.Discard)
		err = results.EachWithoutDetails(*x.exec, func(r contract.Result) error {
			return w.Write(sanitizeArtifacts([]contract.Result{r}, x.artifacts, x.log)[0])
		})
		if err = errors.Join(err, w.Flush(), f.Close()); err != nil {
			return lost(err)
		}
	} else if err := moveIn(x.logDir, spill, ResultsFile); err != nil {
		return lost(err)
	}
	if err := moveIn(x.logDir, detailsSpill, DetailsFile); err != nil {
		return lost(err)
	}
	x.exec.ResultsFile, x.exec.DetailsFile = filepath.Join(LogDir, ResultsFile), filepath.Join(LogDir, DetailsFile)
	x.log.Info("results kept in a file: more than a run holds in memory", "results", x.exec.ResultCount, "file", x.exec.ResultsFile, "details", x.exec.DetailsFile)
	return nil
}

func (x *run) progress(format string, a ...any) {
	if w := x.r.opts.Progress; w != nil {
		fmt.Fprintf(w, format, a...)
	}
}

func (x *run) execute(ctx context.Context, overrides map[string]string) {
	cfg := x.r.opts.Config.Runner
	in := x.in
	x.log.Info("run starting", "item", in.Item, "type", in.ItemType, "arch", in.Arch, "task", in.TaskName, "formula", in.Formula)
	if in.Formula == "" {
		x.r.fail(x.exec, in.TaskName, "", errors.New("no formula given"))
		return
	}
	f, err := formula.Load(in.Formula)
	if name := in.FormulaName; name != "" {
		var ferr *formula.Error
		if errors.As(err, &ferr) {
			ferr.File = name
		}
		if f != nil {
			f.File = name
		}
	}
	if err != nil {
		x.log.Error("formula", "error", err)
		x.r.fail(x.exec, in.TaskName, "", err)
		return
	}
	for _, w := range f.Warnings {
		x.log.Warn(w)
	}
	if x.exec.TaskName == "" {
		x.exec.TaskName = f.Name
	}
	fail := func(err error) {
		x.log.Error("run failed", "error", err)
		x.r.fail(x.exec, f.Name, f.Namespace, err)
	}
	taskDir, err := filepath.Abs(filepath.Dir(in.Formula))
	if err != nil {
		fail(directives.Infra(err))
		return
	}
	runDir, err := filepath.Abs(filepath.Join(x.r.workRoot(), in.UUID))
	if err != nil {
		fail(directives.Infra(err))
		return
	}
	_ = os.RemoveAll(runDir)
	workdir := filepath.Join(runDir, "work")
	if err := os.MkdirAll(workdir, 0o755); err != nil {
		fail(directives.Infra(fmt.Errorf("work folder: %w", err)))
		return
	}
	defer os.RemoveAll(runDir)
	if x.copyTask {
		dst := filepath.Join(runDir, "task")
		if err := copyTree(taskDir, dst); err != nil {
			fail(directives.Infra(fmt.Errorf("copying the task: %w", err)))
			return
		}
		taskDir = dst
	}
	// environment.rpm is checked, not installed: scripts/env.sh (or the
	// container image) provides it; see missingEnvironment.
	if err := x.missingEnvironment(ctx, f); err != nil {
		x.log.Error("run cannot start", "error", err)
		outcome := contract.Outcome("")
		if errors.As(err, new(*missingError)) {
			outcome = contract.Aborted
		}
		setFailure(x.exec, f.Name, f.Namespace, err, outcome)
		return
	}

	jobid := in.JobID
	if jobid == "" {
		jobid = "-1"
	}
	vars := map[string]any{
		"item":         in.Item,
		"type":         in.ItemType,
		"arch":         in.Arch,
		"uuid":         in.UUID,
		"jobid":        jobid,
		"workdir":      workdir,
		"artifactsdir": x.artifacts,
		"taskname":     x.exec.TaskName,
		"checkname":    f.Name,
		"namespace":    f.Namespace,
	}
	if IsIdent(in.ItemType) {
		vars[in.ItemType] = in.Item
	}
	for k, v := range overrides {
		vars[k] = v
	}
	if err := checkInputs(f, vars, in.ItemType); err != nil {
		fail(err)
		return
	}
	for _, a := range f.Actions {
		if _, ok := directives.Lookup(a.Directive); !ok {
			fail(fmt.Errorf("%s: action %q: unknown directive %q (known: %s)", f.Where(a), a.Name, a.Directive, strings.Join(directives.Names(), ", ")))
			return
		}
	}
	if err := checkRefs(f, vars); err != nil {
		fail(err)
		return
	}
	x.env = &directives.Env{TaskDir: taskDir, WorkDir: workdir, ArtifactsDir: x.artifacts, Vars: vars, Config: x.r.opts.Config, Log: x.log, Origin: in.TaskOrigin,
		// Beside the work folder, not in it: the task sees neither the
		// run's folder nor this file, so it cannot write results past
		// the namespace rules.
		ResultsSpill: filepath.Join(runDir, "results.spill")}
	defer x.takeComments()

	jobCtx := ctx
	if cfg.JobTimeout > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeoutCause(ctx, cfg.JobTimeout, directives.Stopped(fmt.Errorf("job timeout (%s) reached", cfg.JobTimeout)))
		defer cancel()
	}
	for i, a := range f.Actions {
		start := time.Now()
		x.progress("[%d/%d] %s (%s) ... ", i+1, len(f.Actions), a.Name, a.Directive)
		ret, err := x.action(jobCtx, f, i, a)
		if err != nil {
			x.progress("failed after %s\n", time.Since(start).Round(time.Millisecond))
			if terr := x.takeResults(); terr != nil {
				err = errors.Join(err, terr)
			}
			fail(err)
			return
		}
		x.progress("ok %s\n", time.Since(start).Round(time.Millisecond))
		if a.Export != "" {
			vars[a.Export] = ret
		}
	}
	if err := x.takeResults(); err != nil {
		fail(err)
		return
	}
	x.exec.ExecutionStatus = contract.ExecutionOK
	x.exec.ExitCode = x.env.ExitCode()
}

// action runs one action with its own timeout and log files.
func (x *run) action(ctx context.Context, f *formula.Formula, i int, a formula.Action) (ret any, err error) {
	where := fmt.Sprintf("%s: action %q", f.Where(a), a.Name)
	d, _ := directives.Lookup(a.Directive)
	params := a.Params
	if _, raw := d.(directives.Unexpanded); !raw {
		params, err = formula.Expand(params, x.env.Vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	pm, ok := params.(map[string]any)
	if !ok {
		pm = map[string]any{directives.BareParam: params}
	}
	if tmo := x.r.opts.Config.Runner.ActionTimeout; tmo > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, tmo, directives.Stopped(fmt.Errorf("action timeout (%s) reached", tmo)))
		defer cancel()
	}
	base := fmt.Sprintf("%02d-%s", i+1, slug(a.Name))
	// Most actions print nothing on one stream or both: a log is made when
	// its first byte comes, not for every action.
	stdout, stderr := &actionLog{dir: x.logDir, name: base + ".stdout"}, &actionLog{dir: x.logDir, name: base + ".stderr"}
	defer func() {
		if cerr := errors.Join(stdout.Close(), stderr.Close()); cerr != nil && err == nil {
			ret, err = nil, directives.Infra(fmt.Errorf("%s: action log: %w", where, cerr))
		}
	}()
	x.env.ActionName = a.Name
	x.env.Stdout, x.env.Stderr = stdout, stderr
	x.enter(i, a.Name)
	defer x.r.enter(x.in.UUID, "")
	x.runLog.Info("action starting", "action", a.Name, "directive", a.Directive, "line", a.Line)
	defer func() {
		if p := recover(); p != nil {
			x.log.Error("directive panicked", "action", a.Name, "panic", p, "stack", string(debug.Stack()))
			ret, err = nil, fmt.Errorf("%s: directive %s crashed: %v", where, a.Directive, p)
		}
	}()
	ret, err = d.Run(ctx, pm, x.env)
	if err != nil {
		var ue *formula.UndefinedError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		x.log.Error("action failed", "action", a.Name, "error", err)
		if directives.IsInfra(err) {
			return nil, directives.Infra(fmt.Errorf("%s: %w", where, err))
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	x.runLog.Info("action done", "action", a.Name)
	return ret, nil
}

var archRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// takeComments moves the Bodhi comments that bodhi_comment actions made
// into the execution, for the reporter.
func (x *run) takeComments() {
	if cs := x.env.TakeComments(); len(cs) > 0 {
		x.exec.BodhiComments = cs
	}
}

// checkInput refuses a job the runner cannot run as asked. The item stays
// free-form (it is data), but a NUL byte cannot travel in an argument or
// environment variable.
func checkInput(in contract.RunnerInput) error {
	switch {
	case !uuidRe.MatchString(in.UUID):
		return fmt.Errorf("uuid %q: use letters, digits, '.', '_' and '-' only", in.UUID)
	case !archRe.MatchString(in.Arch):
		return fmt.Errorf("arch %q: use letters, digits, '.', '_' and '-' only", in.Arch)
	case in.ItemType != "" && !IsIdent(in.ItemType):
		return fmt.Errorf("item type %q: use letters, digits and '_' only", in.ItemType)
	case strings.IndexByte(in.Item, 0) >= 0:
		return errors.New("item contains a NUL byte")
	case len(in.Item) > 4096:
		return fmt.Errorf("item is %d bytes long; at most 4096", len(in.Item))
	}
	return nil
}

// checkInputs makes sure every input.args entry is defined before anything runs.
func checkInputs(f *formula.Formula, vars map[string]any, itemType string) error {
	for _, arg := range f.Args {
		found := false
		for _, n := range arg.Names {
			if v, ok := vars[n]; ok && v != "" {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s:%d: input.args needs %s, but the item type is %q", f.File, arg.Line, arg, itemType)
		}
	}
	return nil
}

// checkRefs finds, before anything runs, a variable an action uses that
// is not defined by then (not built in, overridden or exported by an
// earlier action): a typo in the last action should not cost a long run.
// Directives that substitute their parameters themselves (shell, whose
// scripts keep their own $1) are checked when they run.
func checkRefs(f *formula.Formula, vars map[string]any) error {
	defined := map[string]bool{}
	for k := range vars {
		defined[k] = true
	}
	for _, a := range f.Actions {
		d, _ := directives.Lookup(a.Directive)
		if _, raw := d.(directives.Unexpanded); !raw {
			refs, err := formula.Refs(a.Params)
			if err != nil {
				return fmt.Errorf("%s: action %q: %w", f.Where(a), a.Name, err)
			}
			for _, name := range refs {
				if !defined[name] {
					return fmt.Errorf("%s: action %q: %w", f.Where(a), a.Name, &formula.UndefinedError{Name: name})
				}
			}
		}
		if a.Export != "" {
			defined[a.Export] = true
		}
	}
	return nil
}

// IsIdent tells whether s is a variable name (letters, digits, _).
func IsIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

var slugRe = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(slugRe.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "action"
	}
	return s
}

// copyTree copies a task folder: regular files with their mode, folders
// and symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0:
			return copyExecutable(p, target, info.Mode().Perm())
		case info.Mode().IsRegular():
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
			if err != nil {
				return err
			}
			return errors.Join(copyFile(p, out), out.Close())
		}
		return nil
	})
}

// copyExecutable writes a file that will be run while no process forks: a
// child forked meanwhile would hold it open for writing until it execs, and
// running the file then fails with "text file busy" (ETXTBSY), a spurious
// CRASHED under load. syscall.ForkLock is what os/exec takes to fork.
func copyExecutable(src, dst string, perm os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// actionLog is one of an action's log files, made (by createIn) when the
// first byte is written to it. Like a file, it may be written from several
// goroutines.
type actionLog struct {
	dir  *os.Root
	name string
	mu   sync.Mutex
	f    *os.File
	err  error
}

func (l *actionLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && l.err == nil {
		l.f, l.err = createIn(l.dir, l.name)
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Write(p)
}

// Close closes the file, if one was made, and says whether it could not
// be made or written.
func (l *actionLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		if err := l.f.Close(); err != nil && l.err == nil {
			l.err = err
		}
		l.f = nil
	}
	return l.err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
