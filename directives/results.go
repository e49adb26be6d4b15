package directives

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/capped"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// maxResultsFile caps a results file read whole by a directive (ResultYAML;
// TAP13 streams).
const maxResultsFile = 64 << 20

// defaults are what task output leaves out, taken from the run's variables.
func (e *Env) defaults() results.Defaults {
	s := func(k string) string { v, _ := e.Vars[k].(string); return v }
	return results.Defaults{
		CheckName: s("checkname"),
		Namespace: s("namespace"),
		Item:      s("item"),
		Type:      s("type"),
		Arch:      s("arch"),
		Origin:    e.Origin,
	}
}

// resultsInput reads a directive's results (TAP13 or ResultYAML, as text or
// as data an earlier action exported) or file parameter, exactly one of them.
func resultsInput(params map[string]any, env *Env, key string) ([]byte, error) {
	v, hasResults := params[key]
	f, hasFile := params["file"]
	switch {
	case hasResults && hasFile:
		return nil, fmt.Errorf("give %s or file, not both", key)
	case hasResults:
		switch x := v.(type) {
		case string:
			return []byte(x), nil
		case nil:
			return []byte("results: []\n"), nil
		case []any:
			return yaml.Marshal(map[string]any{"results": x})
		default:
			return yaml.Marshal(x)
		}
	case hasFile:
		name, ok := f.(string)
		if !ok || name == "" {
			return nil, errors.New("file must be a path")
		}
		return readRunFile(env, name)
	}
	return nil, fmt.Errorf("%s or file is required", key)
}

// readRunFile reads a file named by a formula: relative to the task folder,
// or absolute inside the task, work or artifacts folder.
func readRunFile(env *Env, name string) ([]byte, error) {
	f, err := openRunFile(env, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Capped as it is read: a pipe or a file still growing has no size yet.
	data, err := capped.ReadAll(f, maxResultsFile)
	if err != nil {
		return nil, fmt.Errorf("file %q: %w", name, err)
	}
	return data, nil
}

// openRunFile opens a file named by a formula (see readRunFile).
func openRunFile(env *Env, name string) (*os.File, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.TaskDir, name)
	}
	real, err := resolveInside(path, name, env.TaskDir, env.WorkDir, env.ArtifactsDir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, fmt.Errorf("file %q: %w", name, err)
	}
	return f, nil
}

// parseResults reads task output with the run's defaults.
func parseResults(data []byte, env *Env) ([]contract.Result, error) {
	return results.ParseOutput(data, env.defaults())
}

// ResultYAML renders results as a ResultYAML document.
func ResultYAML(rs []contract.Result) (string, error) {
	list := make([]any, 0, len(rs))
	for _, r := range rs {
		m, err := contract.ToMap(r)
		if err != nil {
			return "", err
		}
		list = append(list, jsonToPlain(m))
	}
	raw, err := yaml.Marshal(map[string]any{"results": list})
	return string(raw), err
}

// jsonToPlain makes json.Number values plain numbers for YAML.
func jsonToPlain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k := range x {
			x[k] = jsonToPlain(x[k])
		}
	case []any:
		for i := range x {
			x[i] = jsonToPlain(x[i])
		}
	case interface{ Int64() (int64, error) }:
		if n, err := x.Int64(); err == nil {
			return n
		}
		return fmt.Sprint(x)
	}
	return v
}

// resultsdb checks task output and hands its results to the reporter
// (reference §2.4): results (TAP13 or ResultYAML) or file. Results that
// could be read are handed over even when others could not; the action
// still fails then, so the run is marked broken. A TAP13 file is read as a
// stream, a few tests at a time, so its length does not matter; its results go
// to the run's spill file past MemoryResults. The action's value (for
// export) is its results as ResultYAML, or, past MemoryResults, a line
// saying how many there were.
func resultsdb(ctx context.Context, params map[string]any, env *Env) (any, error) {
	d := env.defaults()
	if f := env.Config.Reporter.Namespaces; f != "" {
		ns, err := results.LoadNamespaces(f)
		if err != nil {
			return nil, Infra(err)
		}
		d.Namespaces = ns
	}
	var own []contract.Result // this action's, for its value
	count := 0
	add := func(r contract.Result) error {
		if err := env.AddResult(r); err != nil {
			return Infra(err)
		}
		if count++; count <= MemoryResults {
			own = append(own, r)
		} else {
			own = nil
		}
		return nil
	}
	perr := readResults(params, env, d, add)
	if env.Log != nil {
		env.Log.Info("results handed to the reporter", "action", env.ActionName, "count", count)
	}
	if perr != nil {
		return nil, perr
	}
	if count > MemoryResults {
		return fmt.Sprintf("%d results (more than %d: not kept for export)", count, MemoryResults), nil
	}
	return ResultYAML(own)
}

// readResults reads the action's task output and hands each result to
// add. A TAP13 file streams; anything else is read whole.
func readResults(params map[string]any, env *Env, d results.Defaults, add func(contract.Result) error) error {
	_, hasResults := params["results"]
	name, isPath := params["file"].(string)
	if hasResults || !isPath || name == "" {
		// resultsInput says what is wrong with the parameters, if anything.
		data, err := resultsInput(params, env, "results")
		if err != nil {
			return err
		}
		return addParsed(data, d, add)
	}
	f, err := openRunFile(env, name)
	if err != nil {
		return err
	}
	defer f.Close()
	in := bufio.NewReaderSize(f, 64<<10)
	if peek, _ := in.Peek(64 << 10); results.DetectFormat(peek) == results.FormatTAP {
		_, err := results.StreamTAP(in, d, add)
		return outputError(err)
	}
	data, err := capped.ReadAll(in, maxResultsFile)
	if err != nil {
		return fmt.Errorf("file %q: %w", name, err)
	}
	return addParsed(data, d, add)
}

// addParsed hands what could be parsed to add, then says what could not.
func addParsed(data []byte, d results.Defaults, add func(contract.Result) error) error {
	rs, perr := results.ParseOutput(data, d)
	for _, r := range rs {
		if err := add(r); err != nil {
			return err
		}
	}
	return outputError(perr)
}

// outputError says that an error is the task output's, but for one of
// keeping its results (the infrastructure's).
func outputError(err error) error {
	var infra *InfraError
	if err == nil || errors.As(err, &infra) {
		return err
	}
	return fmt.Errorf("task output: %w", err)
}

// exitcode sets the run's exit status from results (reference §2.4):
// result_worst gives 100 when any outcome is worse than INFO, result_last
// when the last one is. With several exitcode actions the worst wins.
func exitcode(ctx context.Context, params map[string]any, env *Env) (any, error) {
	_, last := params["result_last"]
	_, worst := params["result_worst"]
	if last == worst {
		return nil, errors.New("give exactly one of result_last and result_worst")
	}
	key := "result_worst"
	if last {
		key = "result_last"
	}
	data, err := resultsInput(map[string]any{key: params[key]}, env, key)
	if err != nil {
		return nil, err
	}
	rs, err := parseResults(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	code := 0
	bad := func(o contract.Outcome) bool { return o != contract.Passed && o != contract.Info }
	if last {
		if len(rs) > 0 && bad(rs[len(rs)-1].Outcome) {
			code = 100
		}
	} else {
		for _, r := range rs {
			if bad(r.Outcome) {
				code = 100
			}
		}
	}
	env.SetExitCode(code)
	return code, nil
}

// dummy does nothing: result FAIL (any case) makes the action fail, any
// other result returns msg. For testing formulas.
func dummy(ctx context.Context, params map[string]any, env *Env) (any, error) {
	result, ok := params["result"]
	if !ok {
		return nil, errors.New("result is required (PASS or FAIL)")
	}
	msg, _ := params["msg"].(string)
	if strings.EqualFold(fmt.Sprint(result), "FAIL") {
		if msg == "" {
			msg = "dummy directive asked to fail"
		}
		return nil, errors.New(msg)
	}
	if msg == "" {
		return nil, nil
	}
	return msg, nil
}

func init() {
	Register("resultsdb", Func(resultsdb))
	Register("exitcode", Func(exitcode))
	Register("dummy", Func(dummy))
}
