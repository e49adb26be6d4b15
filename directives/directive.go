// Package directives holds the actions a task formula can call, one file per
// directive, each registered by name (libtaskotron's directive modules).
package directives

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/runner/formula"
)

// Directive runs one formula action. params are the action's parameters with
// variables already substituted; the return value is what `export:` stores.
type Directive interface {
	Run(ctx context.Context, params map[string]any, env *Env) (any, error)
}

// BareParam is the key under which a directive gets an action's value when
// that value is not a mapping (shell's list of commands).
const BareParam = "_"

// Unexpanded is implemented by directives that get their parameters as
// written and substitute variables themselves with Env.Expand (shell: so that
// a value never becomes part of a command line's words).
type Unexpanded interface {
	Directive
	Unexpanded()
}

// UnexpandedFunc adapts a plain function to Unexpanded.
type UnexpandedFunc func(ctx context.Context, params map[string]any, env *Env) (any, error)

// Run calls f.
func (f UnexpandedFunc) Run(ctx context.Context, params map[string]any, env *Env) (any, error) {
	return f(ctx, params, env)
}

// Unexpanded marks f.
func (UnexpandedFunc) Unexpanded() {}

// Func adapts a plain function to Directive.
type Func func(ctx context.Context, params map[string]any, env *Env) (any, error)

// Run calls f.
func (f Func) Run(ctx context.Context, params map[string]any, env *Env) (any, error) {
	return f(ctx, params, env)
}

// Env is what a directive may see and touch of the run it belongs to.
type Env struct {
	// TaskDir is the task's checkout; WorkDir a scratch folder for this run;
	// ArtifactsDir the folder kept and published for this execution.
	TaskDir      string
	WorkDir      string
	ArtifactsDir string
	// Vars are the formula variables (item, type, arch, uuid, exports…).
	Vars map[string]any
	// Config is the whole configuration, for service URLs and limits.
	Config config.Config
	Log    *slog.Logger
	// ActionName names the action being run, for error messages and logs.
	ActionName string
	// Origin is the task repo's origin, for the namespace allowlist.
	Origin string
	// Stdout and Stderr receive what the action's processes print (the
	// action's log files in the artifacts); nil discards.
	Stdout, Stderr io.Writer

	// ResultsSpill is the file results go to once there are more than a
	// run keeps in memory (MemoryResults): the runner's, out of the task's
	// sight; their details go beside it (<ResultsSpill>.details). Empty
	// keeps them all in memory.
	ResultsSpill string

	mu       sync.Mutex
	results  resultSet
	exitCode int
}

// Expand substitutes the formula variables in v (see formula.Expand).
func (e *Env) Expand(v any) (any, error) { return formula.Expand(v, e.Vars) }

// SetExitCode records an exitcode directive's verdict; the worst one wins.
func (e *Env) SetExitCode(code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if code > e.exitCode {
		e.exitCode = code
	}
}

// ExitCode is the worst verdict recorded by SetExitCode.
func (e *Env) ExitCode() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exitCode
}

// InfraError marks a failure of the infrastructure (a service down, a
// download that kept failing): the job ends ABORTED, not FAILED.
type InfraError struct{ Err error }

func (e *InfraError) Error() string { return e.Err.Error() }
func (e *InfraError) Unwrap() error { return e.Err }

// Infra wraps err as an infrastructure failure.
func Infra(err error) error {
	if err == nil {
		return nil
	}
	return &InfraError{Err: err}
}

// IsInfra tells whether err is, or wraps, an infrastructure failure.
func IsInfra(err error) bool {
	var ie *InfraError
	return errors.As(err, &ie)
}

// StoppedError is work that was stopped rather than failing by itself: a
// timeout, a process killed by a signal. Such a run is ABORTED, not CRASHED.
type StoppedError struct{ Err error }

func (e *StoppedError) Error() string { return e.Err.Error() }
func (e *StoppedError) Unwrap() error { return e.Err }

// Stopped marks err as work that was stopped.
func Stopped(err error) error {
	if err == nil {
		return nil
	}
	return &StoppedError{Err: err}
}

// IsStopped tells whether err is, or wraps, work that was stopped.
func IsStopped(err error) bool {
	var se *StoppedError
	return errors.As(err, &se)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Directive{}
)

// Register makes a directive callable from formulas under name. Registering
// a name twice is a programming error.
func Register(name string, d Directive) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("directive %q registered twice", name))
	}
	registry[name] = d
}

// Lookup finds a registered directive.
func Lookup(name string) (Directive, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	d, ok := registry[name]
	return d, ok
}

// Names lists the registered directives, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
