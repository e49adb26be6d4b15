package directives

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/taskotron-go/taskotron/capped"
)

// pythonWrapper imports the task's script as a module (so its __main__
// block does not run), calls the callable with the keyword arguments read
// from a JSON file and writes the return value to another JSON file. The
// parameters never pass through a command line or source code.
const pythonWrapper = `
import importlib.util, json, os, sys
path, name, args_path, ret_path = sys.argv[1:5]
sys.argv = [path]
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
spec = importlib.util.spec_from_file_location("taskotron_task", path)
mod = importlib.util.module_from_spec(spec)
sys.modules["taskotron_task"] = mod
spec.loader.exec_module(mod)
fn = getattr(mod, name, None)
if not callable(fn):
    sys.stderr.write("%s has no callable named %s\n" % (path, name))
    sys.exit(3)
with open(args_path) as f:
    kwargs = json.load(f)
ret = fn(**kwargs)
with open(ret_path, "w") as f:
    json.dump(ret, f, default=str)
`

// python runs a callable of the task's Python script in a subprocess with
// the other parameters as keyword arguments (reference §2.4). The export is
// what it returned: a string (usually ResultYAML) or structured data.
func python(ctx context.Context, params map[string]any, env *Env) (any, error) {
	file, _ := params["file"].(string)
	callable, _ := params["callable"].(string)
	if file == "" || callable == "" {
		return nil, errors.New("python needs file (the script, relative to the task) and callable (a function name)")
	}
	script, err := insideTask(env, file)
	if err != nil {
		return nil, err
	}
	kwargs := map[string]any{}
	for k, v := range params {
		if k != "file" && k != "callable" {
			kwargs[k] = v
		}
	}
	argsJSON, err := json.Marshal(kwargs)
	if err != nil {
		return nil, fmt.Errorf("parameters cannot be passed to Python: %w", err)
	}
	tmp, err := os.MkdirTemp(env.WorkDir, "python-")
	if err != nil {
		return nil, Infra(fmt.Errorf("scratch folder: %w", err))
	}
	defer os.RemoveAll(tmp)
	argsPath := filepath.Join(tmp, "kwargs.json")
	retPath := filepath.Join(tmp, "return.json")
	if err := os.WriteFile(argsPath, argsJSON, 0o600); err != nil {
		return nil, Infra(fmt.Errorf("scratch folder: %w", err))
	}
	interp := env.Config.Runner.Python
	if interp == "" {
		interp = "python3"
	}
	res, err := env.Exec(ctx, Cmd{Argv: []string{interp, "-c", pythonWrapper, script, callable, argsPath, retPath}})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		msg := fmt.Sprintf("%s: %s failed with status %d", file, callable, res.ExitCode)
		if res.StderrTail != "" {
			msg += ": " + res.StderrTail
		}
		return nil, errors.New(msg)
	}
	fi, err := os.Stat(retPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %s returned nothing readable: %w", file, callable, err)
	}
	if fi.Size() > maxResultsFile {
		return nil, fmt.Errorf("%s: %s returned %d bytes; at most %d", file, callable, fi.Size(), maxResultsFile)
	}
	raw, err := capped.ReadFile(retPath, maxResultsFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %s returned nothing readable: %w", file, callable, err)
	}
	var ret any
	if err := json.Unmarshal(raw, &ret); err != nil {
		return nil, fmt.Errorf("%s: %s return value: %w", file, callable, err)
	}
	return normalizeJSON(ret), nil
}

// normalizeJSON turns JSON numbers that are whole into ints, as YAML would.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalizeJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = normalizeJSON(x[k])
		}
		return x
	}
	return v
}

// insideTask resolves a path given relative to the task's checkout and
// refuses one that leads out of it.
func insideTask(env *Env, rel string) (string, error) {
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("file %q must be relative to the task folder", rel)
	}
	return resolveInside(filepath.Join(env.TaskDir, rel), rel, env.TaskDir)
}

// resolveInside follows symlinks in path and checks that the result lies
// inside one of the roots. what names the path in errors.
func resolveInside(path, what string, roots ...string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("file %q does not exist", what)
		}
		return "", fmt.Errorf("file %q: %w", what, err)
	}
	for _, root := range roots {
		if root == "" {
			continue
		}
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(r, real); err == nil && rel != ".." && !startsWithDotDot(rel) {
			return real, nil
		}
	}
	return "", fmt.Errorf("file %q is outside the task, work and artifacts folders", what)
}

func startsWithDotDot(rel string) bool {
	return len(rel) >= 3 && rel[:3] == ".."+string(filepath.Separator)
}

func init() {
	Register("python", Func(python))
}
