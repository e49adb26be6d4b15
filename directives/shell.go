package directives

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/taskotron-go/taskotron/runner/formula"
)

// shell runs commands. A command written as one string is split into words
// first and each word is substituted after, so a variable's value is always
// one argument (or, for a list, several) and never shell syntax:
//
//	shell:
//	  - ./check.sh --item ${item} --out ${artifactsdir}/out.tap
//	  - [./other.sh, "${item}"]
//	  - {argv: [./x.sh], env: {ITEM: "${item}"}, ok_exit: [0, 1]}
//	  - {shell: bash, script: 'echo "$1" | wc -c', args: ["${item}"]}
//
// A script given to an explicit shell is passed as written (it is not
// substituted): values reach it as arguments ($1…), through env:, or as
// TASKOTRON_ITEM and friends. The export is what the commands printed.
func shell(ctx context.Context, params map[string]any, env *Env) (any, error) {
	var cmds []any
	shared := map[string]any{}
	switch {
	case params[BareParam] != nil:
		cmds = asList(params[BareParam])
	case params["commands"] != nil:
		cmds = asList(params["commands"])
		if e, ok := params["env"]; ok {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, errors.New("env must be a mapping of NAME: value")
			}
			shared = m
		}
	default:
		cmds = []any{map[string]any(params)}
	}
	if len(cmds) == 0 {
		return nil, errors.New("no commands given")
	}
	var out strings.Builder
	for i, c := range cmds {
		spec, err := shellCommand(c, shared, env)
		if err != nil {
			return nil, fmt.Errorf("command %d: %w", i+1, err)
		}
		res, err := env.Exec(ctx, spec.cmd)
		out.Write(res.Stdout)
		if err != nil {
			return nil, fmt.Errorf("command %d: %w", i+1, err)
		}
		if !slices.Contains(spec.okExit, res.ExitCode) {
			msg := fmt.Sprintf("command %d (%s) exited with status %d", i+1, spec.cmd.Argv[0], res.ExitCode)
			if res.StderrTail != "" {
				msg += ": " + res.StderrTail
			}
			return nil, errors.New(msg)
		}
	}
	return out.String(), nil
}

type shellSpec struct {
	cmd    Cmd
	okExit []int
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func shellCommand(c any, shared map[string]any, env *Env) (shellSpec, error) {
	spec := shellSpec{okExit: []int{0}}
	vars := map[string]any{}
	for k, v := range shared {
		vars[k] = v
	}
	switch x := c.(type) {
	case string:
		argv, err := commandArgv(x, env)
		if err != nil {
			return spec, err
		}
		spec.cmd.Argv = argv
	case []any:
		argv, err := listArgv(x, env)
		if err != nil {
			return spec, err
		}
		spec.cmd.Argv = argv
	case map[string]any:
		for k := range x {
			switch k {
			case "argv", "shell", "script", "args", "env", "ok_exit":
			default:
				return spec, fmt.Errorf("unknown key %q (want argv, or shell with script and args; env, ok_exit)", k)
			}
		}
		if e, ok := x["env"]; ok {
			m, ok := e.(map[string]any)
			if !ok {
				return spec, errors.New("env must be a mapping of NAME: value")
			}
			for k, v := range m {
				vars[k] = v
			}
		}
		if oe, ok := x["ok_exit"]; ok {
			spec.okExit = nil
			for _, v := range asList(oe) {
				n, ok := v.(int)
				if !ok {
					return spec, fmt.Errorf("ok_exit: %v is not an exit status", v)
				}
				spec.okExit = append(spec.okExit, n)
			}
		}
		switch {
		case x["argv"] != nil && x["shell"] == nil:
			var err error
			switch a := x["argv"].(type) {
			case string:
				spec.cmd.Argv, err = commandArgv(a, env)
			case []any:
				spec.cmd.Argv, err = listArgv(a, env)
			default:
				err = errors.New("argv must be a command string or a list")
			}
			if err != nil {
				return spec, err
			}
		case x["shell"] != nil && x["argv"] == nil:
			sh, ok := x["shell"].(string)
			if !ok || sh == "" {
				return spec, errors.New("shell must name an interpreter, like bash")
			}
			script, ok := x["script"].(string)
			if !ok {
				return spec, errors.New("shell needs a script (a string)")
			}
			args, err := listArgv(asList(orEmpty(x["args"])), env)
			if err != nil {
				return spec, err
			}
			spec.cmd.Argv = append([]string{sh, "-c", script, sh}, args...)
		default:
			return spec, errors.New("give either argv or shell with script")
		}
	default:
		return spec, fmt.Errorf("a command is a string, a list or a mapping, not %T", c)
	}
	if len(vars) > 0 {
		spec.cmd.Env = map[string]string{}
		for k, v := range vars {
			if !validEnvName(k) {
				return spec, fmt.Errorf("env: %q is not a variable name", k)
			}
			ev, err := env.Expand(v)
			if err != nil {
				return spec, fmt.Errorf("env %s: %w", k, err)
			}
			spec.cmd.Env[k] = formula.Stringify(ev)
		}
	}
	if len(spec.cmd.Argv) == 0 || spec.cmd.Argv[0] == "" {
		return spec, errors.New("empty command")
	}
	return spec, nil
}

func orEmpty(v any) any {
	if v == nil {
		return []any{}
	}
	return v
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// commandArgv splits a command string into words, then substitutes each.
func commandArgv(s string, env *Env) ([]string, error) {
	words, err := formula.Words(s)
	if err != nil {
		return nil, err
	}
	items := make([]any, len(words))
	for i, w := range words {
		items[i] = w
	}
	return listArgv(items, env)
}

// listArgv substitutes each item; an item that is exactly one list-valued
// variable becomes several arguments.
func listArgv(items []any, env *Env) ([]string, error) {
	var argv []string
	for _, it := range items {
		v, err := env.Expand(it)
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				argv = append(argv, formula.Stringify(e))
			}
		case map[string]any:
			return nil, fmt.Errorf("%v is a mapping, not an argument", it)
		default:
			argv = append(argv, formula.Stringify(x))
		}
	}
	return argv, nil
}

func init() {
	Register("shell", UnexpandedFunc(shell))
	// libtaskotron 0.4.12-0.4.14 called it bash.
	Register("bash", UnexpandedFunc(shell))
}
