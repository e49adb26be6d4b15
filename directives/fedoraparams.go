package directives

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// fparams reads the parameters of the Fedora directives (koji, bodhi,
// distgit, createrepo, yumrepoinfo, bodhi_comment) with errors that name
// the directive and the parameter.
type fparams struct {
	directive string
	m         map[string]any
}

func (p fparams) errorf(format string, a ...any) error {
	return fmt.Errorf(p.directive+": "+format, a...)
}

// str is a string parameter; "" when absent. Numbers are accepted as text
// (a YAML tag like 40 is still a name).
func (p fparams) str(key string, required bool) (string, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		if required {
			return "", p.errorf("parameter %s is required", key)
		}
		return "", nil
	}
	switch x := v.(type) {
	case string:
		if required && strings.TrimSpace(x) == "" {
			return "", p.errorf("parameter %s is empty", key)
		}
		return x, nil
	case int, int64, float64:
		return fmt.Sprint(x), nil
	}
	return "", p.errorf("parameter %s must be a string, not %T", key, v)
}

// boolean is a bool parameter; YAML's true/false or the strings
// "true"/"false"/"yes"/"no" as substitution may leave them.
func (p fparams) boolean(key string, def bool) (bool, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "1":
			return true, nil
		case "false", "no", "0":
			return false, nil
		}
	}
	return false, p.errorf("parameter %s must be true or false, not %v", key, v)
}

// list is a parameter that is one string or a list of strings. present
// tells an absent parameter from an empty list.
func (p fparams) list(key string) (items []string, present bool, err error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}, true, nil
	case []string:
		return x, true, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, true, p.errorf("parameter %s item %d must be a string, not %T", key, i+1, e)
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, true, p.errorf("parameter %s must be a string or a list of strings, not %T", key, v)
}

// dir is a folder parameter (created if missing); relative paths are
// below the run's work folder. def is used when the parameter is absent.
func (p fparams) dir(key, def string, env *Env) (string, error) {
	d, err := p.str(key, def == "")
	if err != nil {
		return "", err
	}
	if d == "" {
		d = def
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(env.WorkDir, d)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", p.errorf("%s %s: %w", key, d, err)
	}
	return d, nil
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// fedoraLog is the run's logger, or one that discards.
func fedoraLog(env *Env) *slog.Logger {
	if env.Log != nil {
		return env.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
