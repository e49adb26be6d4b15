package trigger

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/taskotron-go/taskotron/capped"
	"gopkg.in/yaml.v3"
)

// Rules is a parsed trigger_rules.yml: a list of {when, do} rules. The file
// is a template: `${var}` takes a value from the message data or the
// configuration variables, `$$` is a literal `$`. The template is applied per
// message, on the parsed tree, so a whole-value `${critpath_pkgs}` keeps its
// type (a list) as it did when taskotron-trigger rendered the file text.
type Rules struct {
	// Name is where the rules came from (a path, or "built-in").
	Name  string
	rules []rule
	vars  map[string]any
	// critpath, when set, is the critpath list that came with these rules
	// (read with them on a reload); else Options.Critpath is used.
	critpath []string
}

type rule struct {
	line  int
	when  map[string]any
	query *query // when, compiled
	do    []action
}

type action struct {
	line          int
	tasks         any // []any of names, or a placeholder string
	arches        any
	discover      map[string]any
	matchHostArch bool
	priority      int
	// where: the labels a lab must offer to run the jobs (values may be
	// ${var}s); nil sends the jobs to the workers.
	where map[string]any
}

//go:embed default_rules.yml
var defaultRules []byte

// DefaultRules returns the built-in rules (trigger/default_rules.yml).
func DefaultRules() *Rules {
	r, err := ParseRules("built-in rules", defaultRules, nil)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return r
}

// maxRulesFile caps a rules file (Fedora's is a few KiB).
const maxRulesFile = 16 << 20

// LoadRules reads and checks a rules file. vars are configuration values the
// template may refer to (message data wins over them).
func LoadRules(path string, vars map[string]any) (*Rules, error) {
	raw, err := capped.ReadFile(path, maxRulesFile)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return ParseRules(path, raw, vars)
}

// Placeholders stand for `${var}` in the parsed tree. They are characters no
// YAML syntax gives a meaning to, so `{$in: ${critpath_pkgs}}` still parses.
const (
	phOpen  = "\u2983"
	phClose = "\u2984"
)

var placeholderRE = regexp.MustCompile(phOpen + `([^` + phClose + `]*)` + phClose)

// syntaxErrorLine finds the line of a YAML syntax error: the line from which
// on every prefix of the text fails to parse. yaml.v3 reports the line where
// the enclosing block began, which can be far above the mistake.
func syntaxErrorLine(text string, err error) int {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 2000 {
		// Too long to search (each try parses a prefix): yaml's line.
		n := 1
		fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &n)
		return n
	}
	var v yaml.Node
	for k := len(lines) - 1; k >= 1; k-- {
		if yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &v) == nil {
			return k + 1
		}
	}
	return 1
}

// yamlProblem is a yaml.v3 error without its "yaml: line N:" prefix.
func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return rest[i+2:]
			}
		}
	}
	return msg
}

// ParseRules parses rules text; name is used in error messages.
func ParseRules(name string, raw []byte, vars map[string]any) (*Rules, error) {
	text, err := untemplate(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("%s:%d: %s", name, syntaxErrorLine(text, err), yamlProblem(err))
	}
	r := &Rules{Name: name, vars: vars}
	if len(doc.Content) == 0 {
		return r, nil // an empty file schedules nothing
	}
	top := doc.Content[0]
	if top.Kind != yaml.SequenceNode {
		return nil, lineErr(name, top, "want a list of rules (- when: … do: …)")
	}
	for i, n := range top.Content {
		ru, err := parseRule(name, i+1, n)
		if err != nil {
			return nil, err
		}
		r.rules = append(r.rules, ru)
	}
	return r, nil
}

// untemplate replaces `${var}` with placeholders and `$$` with `$`, in one
// pass so that `$${x}` stays the literal text `${x}`.
func untemplate(s string) (string, error) {
	var b strings.Builder
	line := 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			line++
		}
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 || strings.ContainsAny(s[i:i+end], "\n") {
				return "", fmt.Errorf("%d: unclosed ${", line)
			}
			v := s[i+2 : i+end]
			if !validVar(v) {
				return "", fmt.Errorf("%d: bad variable name ${%s}", line, v)
			}
			b.WriteString(phOpen + v + phClose)
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validVar(v string) bool {
	if v == "" {
		return false
	}
	for i, r := range v {
		ok := r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func lineErr(name string, n *yaml.Node, format string, a ...any) error {
	return fmt.Errorf("%s:%d: %s", name, n.Line, fmt.Sprintf(format, a...))
}

func parseRule(name string, index int, n *yaml.Node) (rule, error) {
	ru := rule{line: n.Line}
	if n.Kind != yaml.MappingNode {
		return ru, lineErr(name, n, "a rule is a mapping with when: and do:")
	}
	var haveWhen, haveDo bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "when":
			haveWhen = true
			if v.Kind != yaml.MappingNode {
				return ru, lineErr(name, v, "when: wants a mapping (a query)")
			}
			w, err := toValue(v)
			if err != nil {
				return ru, lineErr(name, v, "%v", err)
			}
			ru.when = w.(map[string]any)
			if ru.query, err = compileQuery(src{v: w, n: v, line: v.Line}); err != nil {
				return ru, errors.New(ruleError(name, index, n.Line, err))
			}
		case "do":
			haveDo = true
			if v.Kind != yaml.SequenceNode {
				return ru, lineErr(name, v, "do: wants a list of actions")
			}
			for _, an := range v.Content {
				a, err := parseAction(name, an)
				if err != nil {
					return ru, err
				}
				ru.do = append(ru.do, a)
			}
		default:
			return ru, lineErr(name, k, "unknown rule key %q (want when, do)", k.Value)
		}
	}
	if !haveWhen {
		return ru, lineErr(name, n, "rule has no when:")
	}
	if !haveDo {
		return ru, lineErr(name, n, "rule has no do:")
	}
	return ru, nil
}

func isPlaceholder(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && placeholderRE.FindString(n.Value) == n.Value && n.Value != ""
}

func parseAction(name string, n *yaml.Node) (action, error) {
	a := action{line: n.Line}
	if n.Kind != yaml.MappingNode {
		return a, lineErr(name, n, "an action is a mapping (tasks:, arches:, discover:, match_host_arch:, where:)")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		val, err := toValue(v)
		if err != nil {
			return a, lineErr(name, v, "%v", err)
		}
		switch k.Value {
		case "tasks", "arches":
			if !isPlaceholder(v) {
				if v.Kind != yaml.SequenceNode {
					return a, lineErr(name, v, "%s wants a list of names", k.Value)
				}
				for _, c := range v.Content {
					if c.Kind != yaml.ScalarNode || c.Value == "" {
						return a, lineErr(name, c, "%s wants a list of names", k.Value)
					}
				}
			}
			if k.Value == "tasks" {
				a.tasks = val
			} else {
				a.arches = val
			}
		case "discover":
			m, ok := val.(map[string]any)
			if !ok {
				return a, lineErr(name, v, "discover wants a mapping with repo:, branch:, fallback_branch:, recursive:")
			}
			for dk := range m {
				switch dk {
				case "repo", "branch", "fallback_branch", "recursive":
				default:
					return a, lineErr(name, v, "discover: unknown key %q", dk)
				}
			}
			if _, ok := m["repo"].(string); !ok {
				return a, lineErr(name, v, "discover needs repo:")
			}
			a.discover = m
		case "match_host_arch":
			b, ok := val.(bool)
			if !ok {
				return a, lineErr(name, v, "match_host_arch wants true or false")
			}
			a.matchHostArch = b
		case "priority":
			p, ok := val.(int)
			if !ok || p < 0 || p > 9 {
				return a, lineErr(name, v, "priority wants a whole number from 0 to 9")
			}
			a.priority = p
		case "where":
			m, ok := val.(map[string]any)
			if !ok || len(m) == 0 {
				return a, lineErr(name, v, "where wants a mapping of labels, like {board: beaglebone-black}")
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				lk, lv := v.Content[i], v.Content[i+1]
				if lk.Value == "" || lv.Kind != yaml.ScalarNode || lv.Value == "" {
					return a, lineErr(name, lv, "where: label %q wants a value (a name, or ${var})", lk.Value)
				}
				// Every value a string: 7 and "7" are the same label.
				m[lk.Value] = lv.Value
			}
			a.where = m
		default:
			return a, lineErr(name, k, "unknown action key %q (want tasks, arches, discover, match_host_arch, priority, where)", k.Value)
		}
	}
	if _, ok := a.where["arch"]; ok && a.arches != nil {
		return a, lineErr(name, n, "give the arch in where: or in arches:, not in both")
	}
	if a.tasks == nil && a.discover == nil {
		return a, lineErr(name, n, "action has neither tasks: nor discover:")
	}
	return a, nil
}

// toValue converts a YAML node into plain Go values (maps, lists, scalars).
func toValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := toValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toValue(c)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.AliasNode:
		return toValue(n.Alias)
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("unsupported YAML node")
}

// resolver fills placeholders from message data, then configuration vars.
type resolver struct {
	data map[string]any
	vars map[string]any
}

var errUnknownVar = errors.New("unknown variable")

func (r resolver) lookup(name string) (any, error) {
	if v, ok := lookup(r.data, name); ok {
		return v, nil
	}
	if v, ok := r.vars[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("%w ${%s}", errUnknownVar, name)
}

// value resolves placeholders anywhere inside v.
func (r resolver) value(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, phOpen) {
			return x, nil
		}
		if m := placeholderRE.FindStringSubmatch(x); m != nil && m[0] == x {
			val, err := r.lookup(m[1])
			if err != nil {
				return nil, err
			}
			return normalise(val), nil
		}
		var err error
		out := placeholderRE.ReplaceAllStringFunc(x, func(ph string) string {
			val, e := r.lookup(ph[len(phOpen) : len(ph)-len(phClose)])
			if e != nil {
				err = e
				return ""
			}
			return text(val)
		})
		return out, err
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			val, err := r.value(item)
			if err != nil {
				return nil, err
			}
			out[i] = val
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			val, err := r.value(item)
			if err != nil {
				return nil, err
			}
			out[k] = val
		}
		return out, nil
	}
	return v, nil
}

// text renders a value inside a longer string.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case []any, []string, map[string]any:
		return short(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// names resolves a tasks: or arches: value into a list of names.
func (r resolver) names(v any, what string) ([]string, error) {
	val, err := r.value(v)
	if err != nil {
		return nil, err
	}
	var out []string
	switch x := val.(type) {
	case []any:
		for _, item := range x {
			s, ok := item.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%s: %s is not a name", what, short(item))
			}
			out = append(out, s)
		}
	case []string:
		out = append(out, x...)
	case string:
		out = append(out, x)
	default:
		return nil, fmt.Errorf("%s: want a list of names, got %s", what, short(val))
	}
	return out, nil
}

// Len is the number of rules.
func (r *Rules) Len() int { return len(r.rules) }
