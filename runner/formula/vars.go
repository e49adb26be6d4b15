package formula

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// UndefinedError says a formula used a variable nobody defined.
type UndefinedError struct {
	Name string
}

func (e *UndefinedError) Error() string { return fmt.Sprintf("undefined variable %q", e.Name) }

// piece is a literal run of text or one placeholder of a template string.
type piece struct {
	lit  string
	path []string // variable name, then attributes; nil for a literal
}

// parseTemplate splits s the way Python's string.Template reads it: $$ is a
// literal $, $name and ${name} are variables, and ${name.attr.attr} reaches
// into maps (libtaskotron 0.4.12). Anything else after a $ is an error.
func parseTemplate(s string) ([]piece, error) {
	var out []piece
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, piece{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("a lone $ at the end of %q (write $$ for a literal $)", s)
		}
		switch n := s[i+1]; {
		case n == '$':
			lit.WriteByte('$')
			i += 2
		case n == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ${ in %q", s)
			}
			inner := s[i+2 : i+2+end]
			path := strings.Split(inner, ".")
			if !identStart(path[0]) {
				return nil, fmt.Errorf("invalid placeholder ${%s} in %q", inner, s)
			}
			for _, p := range path[1:] {
				if !validAttr(p) {
					return nil, fmt.Errorf("invalid placeholder ${%s} in %q", inner, s)
				}
			}
			flush()
			out = append(out, piece{path: path})
			i += 3 + end
		case isIdentByte(n, true):
			j := i + 2
			for j < len(s) && isIdentByte(s[j], false) {
				j++
			}
			flush()
			out = append(out, piece{path: []string{s[i+1 : j]}})
			i = j
		default:
			return nil, fmt.Errorf("invalid placeholder at %q in %q (write $$ for a literal $)", s[i:min(len(s), i+2)], s)
		}
	}
	flush()
	return out, nil
}

func isIdentByte(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

func identStart(s string) bool {
	if s == "" || !isIdentByte(s[0], true) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentByte(s[i], false) {
			return false
		}
	}
	return true
}

func validAttr(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i], false) && s[i] != '-' {
			return false
		}
	}
	return true
}

// Lookup resolves a variable path (name, then attributes) in vars. A
// string holding a YAML mapping or list is decoded to reach its attributes,
// so ${out.key} works on what a python callable returned as YAML.
func Lookup(vars map[string]any, path []string) (any, error) {
	v, ok := vars[path[0]]
	if !ok {
		return nil, &UndefinedError{Name: path[0]}
	}
	for i, attr := range path[1:] {
		if s, isStr := v.(string); isStr {
			var decoded any
			if err := yaml.Unmarshal([]byte(s), &decoded); err == nil {
				v = decoded
			}
		}
		name := strings.Join(path[:i+2], ".")
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[attr]
			if !ok {
				return nil, &UndefinedError{Name: name}
			}
			v = next
		case []any:
			idx, err := strconv.Atoi(attr)
			if err != nil || idx < 0 || idx >= len(c) {
				return nil, &UndefinedError{Name: name}
			}
			v = c[idx]
		default:
			return nil, &UndefinedError{Name: name}
		}
	}
	return v, nil
}

// MaxExpanded caps what one Expand (one action's parameters, one command
// of a shell action) may hold once substituted, counting a value used twice
// twice. Exported variables that use each other ("$a$a", or [$a, $a]) double
// at every action: without a cap the 30th asks for gigabytes and the run
// dies out of memory. It is the cap of a formula's results file, so one
// action's whole output (at most runner.max_output, 10 MiB by default) can
// be handed on in full, and a few times over.
const MaxExpanded = 64 << 20

// SizeError says substitution would make more than MaxExpanded.
type SizeError struct{ Limit int }

func (e *SizeError) Error() string {
	return fmt.Sprintf("variables expand to more than %d MiB, the most one action's parameters may hold (do exported variables use each other?)", e.Limit>>20)
}

// expansion is one Expand's budget.
type expansion struct {
	vars map[string]any
	left int
}

func newExpansion(vars map[string]any) *expansion {
	return &expansion{vars: vars, left: MaxExpanded}
}

func (x *expansion) spend(n int) error {
	if n > x.left {
		x.left = -1
		return &SizeError{Limit: MaxExpanded}
	}
	x.left -= n
	return nil
}

// size is about the length of v's JSON form, counting shared parts each
// time they appear. Each list or map is measured once (a structure shared
// 2^60 times over costs as many steps as it has distinct parts), and
// counting stops a little past limit.
func size(v any, limit int) int {
	type part struct {
		at  uintptr
		len int
	}
	measured := map[part]int{}
	var walk func(v any) int
	walk = func(v any) int {
		var key part
		switch x := v.(type) {
		case string:
			return len(x) + 2
		case []any, map[string]any, map[any]any:
			rv := reflect.ValueOf(x)
			key = part{rv.Pointer(), rv.Len()}
			if n, ok := measured[key]; ok {
				return n
			}
		default:
			return 8
		}
		n := 2
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if n += 1 + walk(e); n > limit {
					break
				}
			}
		case map[string]any:
			for k, e := range x {
				if n += len(k) + 4 + walk(e); n > limit {
					break
				}
			}
		case map[any]any:
			for k, e := range x {
				if n += len(fmt.Sprint(k)) + 4 + walk(e); n > limit {
					break
				}
			}
		}
		measured[key] = n
		return n
	}
	return walk(v)
}

// ExpandString substitutes the variables of one string. When the string is
// exactly one variable, the value keeps its type (a list stays a list).
func ExpandString(s string, vars map[string]any) (any, error) {
	return newExpansion(vars).str(s)
}

func (x *expansion) str(s string) (any, error) {
	if !strings.Contains(s, "$") {
		return s, x.spend(len(s))
	}
	pieces, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	if len(pieces) == 1 && pieces[0].path != nil {
		v, err := Lookup(x.vars, pieces[0].path)
		if err != nil {
			return nil, err
		}
		return v, x.spend(size(v, x.left))
	}
	var b strings.Builder
	for _, p := range pieces {
		if p.path == nil {
			if err := x.spend(len(p.lit)); err != nil {
				return nil, err
			}
			b.WriteString(p.lit)
			continue
		}
		v, err := Lookup(x.vars, p.path)
		if err != nil {
			return nil, err
		}
		if _, isStr := v.(string); !isStr && size(v, x.left) > x.left {
			// Checked before Stringify, which would build it all.
			return nil, x.spend(x.left + 1)
		}
		text := Stringify(v)
		if err := x.spend(len(text)); err != nil {
			return nil, err
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

// Stringify renders a variable's value inside a longer string: text as is,
// numbers and booleans plainly, lists and maps as JSON.
func Stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool, int, int64, float64, json.Number:
		return fmt.Sprint(x)
	default:
		raw, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(raw)
	}
}

// Expand substitutes variables everywhere in v: strings, list items, map
// values and map keys (libtaskotron 0.4.20 replaced keys too). What it
// makes is capped at MaxExpanded (a *SizeError past it).
func Expand(v any, vars map[string]any) (any, error) {
	return newExpansion(vars).value(v)
}

func (x *expansion) value(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return x.str(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			e, err := x.value(item)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the first error is the same on every run
		for _, k := range keys {
			ek, err := x.str(k)
			if err != nil {
				return nil, err
			}
			key, ok := ek.(string)
			if !ok {
				key = Stringify(ek)
			}
			ev, err := x.value(v[k])
			if err != nil {
				return nil, err
			}
			out[key] = ev
		}
		return out, nil
	default:
		return v, x.spend(8)
	}
}

// Words splits a command line into words like a POSIX shell would quote
// them, but without any expansion: whitespace separates words, '…' and "…"
// group, a backslash escapes the next character. The characters a shell
// would act on (; | & < > ` ( )) are refused unless quoted, because no shell
// runs the result: the author must ask for a shell explicitly.
func Words(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ' in command %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += 1 + end
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unclosed \" in command %q", s)
			}
			i = j
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("command %q ends with a backslash", s)
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte(";|&<>`()", c) >= 0:
			return nil, fmt.Errorf("command %q has an unquoted %q: commands run without a shell; to use one, write {shell: bash, script: ...}", s, string(c))
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Refs lists the variables v uses (in strings, list items, map keys and
// values), by name without attributes, in order of first use. It fails
// like Expand would on a malformed placeholder.
func Refs(v any) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var walk func(v any) error
	str := func(s string) error {
		if !strings.Contains(s, "$") {
			return nil
		}
		pieces, err := parseTemplate(s)
		if err != nil {
			return err
		}
		for _, p := range pieces {
			if p.path != nil && !seen[p.path[0]] {
				seen[p.path[0]] = true
				out = append(out, p.path[0])
			}
		}
		return nil
	}
	walk = func(v any) error {
		switch x := v.(type) {
		case string:
			return str(x)
		case []any:
			for _, item := range x {
				if err := walk(item); err != nil {
					return err
				}
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if err := str(k); err != nil {
					return err
				}
				if err := walk(x[k]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := walk(v)
	return out, err
}
