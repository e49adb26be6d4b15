// Package formula reads libtaskotron 0.4 task formulas (runtask.yml) and
// substitutes their variables ($var, ${var}, ${var.attr}).
package formula

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Formula is one parsed task formula.
type Formula struct {
	// File is the path the formula was read from, for error messages.
	File       string
	Name       string
	Desc       string
	Maintainer string
	Namespace  string
	// Args are input.args: each must be defined before anything runs.
	Args []Arg
	// Environment is kept as written (environment.rpm and friends).
	Environment map[string]any
	Actions     []Action
	// Warnings name keys that were ignored.
	Warnings []string
}

// Arg is one input.args entry. A plain name has one entry in Names; a list
// ([koji_build, bodhi_update]) means any one of them will do.
type Arg struct {
	Names []string
	Line  int
}

func (a Arg) String() string { return strings.Join(a.Names, " or ") }

// Action is one step: a directive with its parameters.
type Action struct {
	Name      string
	Directive string
	// Params are the directive's parameters as written: a map, or for
	// directives like shell a bare list or string.
	Params any
	Export string
	Line   int
}

// Error is a problem in a formula, with where it is.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Where formats a position in the formula for messages about an action.
func (f *Formula) Where(a Action) string { return fmt.Sprintf("%s:%d", f.File, a.Line) }

var (
	identRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	checknameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// MaxSize caps a formula file; real ones are a few kilobytes.
const MaxSize = 1 << 20

// Load reads and parses the formula at path.
func Load(path string) (*Formula, error) {
	fh, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: path, Msg: "formula file does not exist"}
		}
		return nil, fmt.Errorf("formula %s: %w", path, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("formula %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("formula larger than %d bytes", MaxSize)}
	}
	return Parse(path, data)
}

// Parse reads a formula from data; file names it in errors.
func Parse(file string, data []byte) (*Formula, error) {
	f := &Formula{File: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "formula is empty"}
		}
		return nil, yamlError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "formula is empty"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Msg: "formula must be a mapping with name, desc, maintainer, input and actions"}
	}
	var actionsNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name", "desc", "maintainer", "namespace":
			s, err := scalarString(file, k.Value, v)
			if err != nil {
				return nil, err
			}
			switch k.Value {
			case "name":
				f.Name = s
			case "desc":
				f.Desc = s
			case "maintainer":
				f.Maintainer = s
			case "namespace":
				f.Namespace = s
			}
		case "input":
			if err := f.parseInput(v); err != nil {
				return nil, err
			}
		case "environment":
			if v.Kind != yaml.MappingNode {
				return nil, &Error{File: file, Line: v.Line, Msg: "environment must be a mapping (like rpm: [a, b])"}
			}
			if err := v.Decode(&f.Environment); err != nil {
				return nil, yamlError(file, err)
			}
		case "actions", "task":
			if actionsNode != nil {
				return nil, &Error{File: file, Line: k.Line, Msg: "both actions and task given; task is the old name of actions, keep one"}
			}
			actionsNode = v
		default:
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unknown key %q ignored", file, k.Line, k.Value))
		}
	}
	if f.Name == "" {
		return nil, &Error{File: file, Line: root.Line, Msg: "formula has no name"}
	}
	if !checknameRe.MatchString(f.Name) {
		return nil, &Error{File: file, Line: root.Line, Msg: fmt.Sprintf("name %q: use letters, digits, '.', '_' and '-' only", f.Name)}
	}
	if f.Namespace != "" && !checknameRe.MatchString(f.Namespace) {
		return nil, &Error{File: file, Line: root.Line, Msg: fmt.Sprintf("namespace %q: use letters, digits, '.', '_' and '-' only", f.Namespace)}
	}
	if actionsNode == nil {
		return nil, &Error{File: file, Line: root.Line, Msg: "formula has no actions"}
	}
	// libtaskotron required them; a run does not need them, so only say so.
	for _, k := range []struct{ key, val string }{{"desc", f.Desc}, {"maintainer", f.Maintainer}} {
		if strings.TrimSpace(k.val) == "" {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: no %s (libtaskotron formulas need one)", file, root.Line, k.key))
		}
	}
	if err := f.parseActions(actionsNode); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Formula) parseInput(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return &Error{File: f.File, Line: v.Line, Msg: "input must be a mapping (like args: [koji_build])"}
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if k.Value != "args" {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unknown input key %q ignored", f.File, k.Line, k.Value))
			continue
		}
		if val.Kind != yaml.SequenceNode {
			return &Error{File: f.File, Line: val.Line, Msg: "input.args must be a list of names (like [koji_build, arch])"}
		}
		for _, item := range val.Content {
			arg := Arg{Line: item.Line}
			switch item.Kind {
			case yaml.ScalarNode:
				arg.Names = []string{item.Value}
			case yaml.SequenceNode:
				for _, alt := range item.Content {
					if alt.Kind != yaml.ScalarNode {
						return &Error{File: f.File, Line: alt.Line, Msg: "input.args alternatives must be names"}
					}
					arg.Names = append(arg.Names, alt.Value)
				}
			default:
				return &Error{File: f.File, Line: item.Line, Msg: "input.args entries must be names, or lists of names meaning any one of them"}
			}
			if len(arg.Names) == 0 {
				return &Error{File: f.File, Line: item.Line, Msg: "input.args entry is an empty list"}
			}
			for _, n := range arg.Names {
				if !identRe.MatchString(n) {
					return &Error{File: f.File, Line: item.Line, Msg: fmt.Sprintf("input.args: %q is not a variable name", n)}
				}
			}
			f.Args = append(f.Args, arg)
		}
	}
	return nil
}

func (f *Formula) parseActions(v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return &Error{File: f.File, Line: v.Line, Msg: "actions must be a list"}
	}
	if len(v.Content) == 0 {
		return &Error{File: f.File, Line: v.Line, Msg: "actions is empty"}
	}
	for n, an := range v.Content {
		if an.Kind != yaml.MappingNode {
			return &Error{File: f.File, Line: an.Line, Msg: fmt.Sprintf("action %d must be a mapping with a name and one directive", n+1)}
		}
		a := Action{Line: an.Line}
		var directives []string
		for i := 0; i+1 < len(an.Content); i += 2 {
			k, val := an.Content[i], an.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				return &Error{File: f.File, Line: k.Line, Msg: fmt.Sprintf("action %d: keys are name, export and a directive name", n+1)}
			}
			switch k.Value {
			case "name":
				s, err := scalarString(f.File, "action name", val)
				if err != nil {
					return err
				}
				a.Name = s
			case "export":
				s, err := scalarString(f.File, "export", val)
				if err != nil {
					return err
				}
				if !identRe.MatchString(s) {
					return &Error{File: f.File, Line: val.Line, Msg: fmt.Sprintf("export %q is not a variable name (letters, digits, _)", s)}
				}
				a.Export = s
			default:
				directives = append(directives, k.Value)
				var params any
				if err := val.Decode(&params); err != nil {
					return yamlError(f.File, err)
				}
				a.Directive = k.Value
				a.Params = params
			}
		}
		switch len(directives) {
		case 0:
			return &Error{File: f.File, Line: an.Line, Msg: fmt.Sprintf("action %d has no directive", n+1)}
		case 1:
		default:
			return &Error{File: f.File, Line: an.Line, Msg: fmt.Sprintf("action %d has more than one directive (%s); split it", n+1, strings.Join(directives, ", "))}
		}
		if a.Name == "" {
			a.Name = fmt.Sprintf("%s (action %d)", a.Directive, n+1)
		}
		f.Actions = append(f.Actions, a)
	}
	return nil
}

func scalarString(file, what string, v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", &Error{File: file, Line: v.Line, Msg: fmt.Sprintf("%s must be a string", what)}
	}
	return v.Value, nil
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into file:line: message on one line.
func yamlError(file string, err error) error {
	msg := strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")), " ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line := 0
		fmt.Sscanf(m[1], "%d", &line)
		return &Error{File: file, Line: line, Msg: m[2]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}
