package trigger

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// This file evaluates a rule's `when`: a MongoDB-style query over the message
// data, with the operators taskotron-trigger's rules used (through python's
// mongoquery) and a few obvious neighbours.

// Check is one evaluated condition, kept so that `taskotron explain` can say
// why a rule matched or not.
type Check struct {
	Field string `json:"field,omitempty"`
	Op    string `json:"op"`
	Want  any    `json:"want,omitempty"`
	Got   any    `json:"got,omitempty"`
	OK    bool   `json:"ok"`
	// Sub holds the checks of $and, $or, $nor and $not.
	Sub []Check `json:"sub,omitempty"`
}

// String renders a check as one short line.
func (c Check) String() string {
	mark := "no"
	if c.OK {
		mark = "yes"
	}
	switch c.Op {
	case "$and", "$or", "$nor", "$not":
		parts := make([]string, len(c.Sub))
		for i, s := range c.Sub {
			parts[i] = s.String()
		}
		prefix := c.Op
		if c.Field != "" {
			prefix = c.Field + " " + c.Op
		}
		return fmt.Sprintf("%s(%s): %s", prefix, strings.Join(parts, "; "), mark)
	}
	return fmt.Sprintf("%s %s %s (got %s): %s", c.Field, c.Op, short(c.Want), short(c.Got), mark)
}

func short(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// match evaluates q against data after resolving placeholders with lookup.
func match(q map[string]any, data map[string]any, res resolver) (bool, []Check, error) {
	keys := sortedKeys(q)
	ok := true
	var checks []Check
	for _, k := range keys {
		v := q[k]
		var c Check
		var err error
		if strings.HasPrefix(k, "$") {
			c, err = logical(k, v, data, res)
		} else {
			c, err = field(k, v, data, res)
		}
		if err != nil {
			return false, nil, err
		}
		checks = append(checks, c)
		ok = ok && c.OK
	}
	return ok, checks, nil
}

func logical(op string, v any, data map[string]any, res resolver) (Check, error) {
	c := Check{Op: op}
	switch op {
	case "$and", "$or", "$nor":
		list, ok := v.([]any)
		if !ok {
			return c, fmt.Errorf("%s wants a list of queries", op)
		}
		any1, all := false, true
		for _, item := range list {
			sub, ok := item.(map[string]any)
			if !ok {
				return c, fmt.Errorf("%s wants a list of queries, found %s", op, short(item))
			}
			m, checks, err := match(sub, data, res)
			if err != nil {
				return c, err
			}
			c.Sub = append(c.Sub, Check{Op: "$and", Sub: checks, OK: m})
			any1 = any1 || m
			all = all && m
		}
		switch op {
		case "$and":
			c.OK = all
		case "$or":
			c.OK = any1
		default:
			c.OK = !any1
		}
	case "$not":
		sub, ok := v.(map[string]any)
		if !ok {
			return c, fmt.Errorf("$not at the top of a query wants a query")
		}
		m, checks, err := match(sub, data, res)
		if err != nil {
			return c, err
		}
		c.Sub, c.OK = checks, !m
	default:
		return c, fmt.Errorf("unknown operator %s", op)
	}
	return c, nil
}

// field evaluates one `key: condition`.
func field(key string, cond any, data map[string]any, res resolver) (Check, error) {
	got, present := lookup(data, key)
	if ops, ok := operatorMap(cond); ok {
		c := Check{Field: key, Op: "$and", OK: true}
		for _, op := range sortedKeys(ops) {
			sc, err := operator(key, op, ops[op], ops, got, present, data, res)
			if err != nil {
				return c, err
			}
			c.Sub = append(c.Sub, sc)
			c.OK = c.OK && sc.OK
		}
		if len(c.Sub) == 1 {
			return c.Sub[0], nil
		}
		return c, nil
	}
	want, err := res.value(cond)
	if err != nil {
		return Check{}, err
	}
	return Check{Field: key, Op: "==", Want: want, Got: got, OK: present && equalOrContains(got, want)}, nil
}

// operatorMap reports whether cond is a map of operators ({$in: …}).
func operatorMap(cond any) (map[string]any, bool) {
	m, ok := cond.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false
	}
	for k := range m {
		if !strings.HasPrefix(k, "$") {
			return nil, false
		}
	}
	return m, true
}

func operator(key, op string, raw any, all map[string]any, got any, present bool, data map[string]any, res resolver) (Check, error) {
	c := Check{Field: key, Op: op, Got: got}
	if op == "$options" {
		// Read together with $regex.
		c.OK, c.Want = true, raw
		return c, nil
	}
	if op == "$not" {
		if ops, ok := operatorMap(raw); ok {
			sub, err := field(key, ops, data, res)
			if err != nil {
				return c, err
			}
			c.Sub, c.OK = []Check{sub}, !sub.OK
			return c, nil
		}
		// {$not: '/regex/'}
		want, err := res.value(raw)
		if err != nil {
			return c, err
		}
		s, ok := want.(string)
		if !ok {
			return c, fmt.Errorf("%s: $not wants operators or a /regex/", key)
		}
		re, err := cachedRegex(s, "")
		if err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		c.Want = s
		c.OK = !(present && regexMatches(re, got))
		return c, nil
	}
	want, err := res.value(raw)
	if err != nil {
		return c, err
	}
	c.Want = want
	switch op {
	case "$eq":
		c.OK = present && equalOrContains(got, want)
	case "$ne":
		c.OK = !(present && equalOrContains(got, want))
	case "$in", "$nin":
		list, ok := want.([]any)
		if !ok {
			return c, fmt.Errorf("%s: %s wants a list, got %s", key, op, short(want))
		}
		in := false
		for _, w := range list {
			if present && equalOrContains(got, w) {
				in = true
				break
			}
		}
		c.OK = in == (op == "$in")
	case "$exists":
		b, ok := want.(bool)
		if !ok {
			return c, fmt.Errorf("%s: $exists wants true or false", key)
		}
		c.OK = present == b
	case "$regex":
		s, ok := want.(string)
		if !ok {
			return c, fmt.Errorf("%s: $regex wants a string", key)
		}
		opts, _ := all["$options"].(string)
		re, err := cachedRegex(s, opts)
		if err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		c.OK = present && regexMatches(re, got)
	case "$gt", "$gte", "$lt", "$lte":
		c.OK = present && compare(got, want, op)
	case "$size":
		list, isList := got.([]any)
		n, isNum := toFloat(want)
		c.OK = isList && isNum && float64(len(list)) == n
	default:
		return c, fmt.Errorf("%s: unknown operator %s", key, op)
	}
	return c, nil
}

// lookup follows a dotted key through maps and lists (a number indexes a list).
func lookup(data map[string]any, key string) (any, bool) {
	if v, ok := data[key]; ok {
		return v, true
	}
	var cur any = data
	for _, part := range strings.Split(key, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			var i int
			if _, err := fmt.Sscanf(part, "%d", &i); err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// equalOrContains is Mongo equality: a list field matches when the whole
// list equals want or one of its elements does.
func equalOrContains(got, want any) bool {
	if equal(got, want) {
		return true
	}
	if list, ok := got.([]any); ok {
		for _, g := range list {
			if equal(g, want) {
				return true
			}
		}
	}
	return false
}

func equal(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	if sa, ok := a.(string); ok {
		sb, ok := b.(string)
		return ok && sa == sb
	}
	return reflect.DeepEqual(normalise(a), normalise(b))
}

// normalise turns typed slices and maps (from Go callers) into the shapes
// JSON and YAML decoding give.
func normalise(v any) any {
	switch x := v.(type) {
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, s := range x {
			if f, ok := toFloat(s); ok {
				out[i] = f
			} else {
				out[i] = normalise(s)
			}
		}
		return out
	}
	if f, ok := toFloat(v); ok {
		return f
	}
	return v
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func compare(got, want any, op string) bool {
	if g, ok := toFloat(got); ok {
		w, ok := toFloat(want)
		if !ok || math.IsNaN(g) {
			return false
		}
		return cmpOp(g < w, g == w, op)
	}
	g, ok1 := got.(string)
	w, ok2 := want.(string)
	if !ok1 || !ok2 {
		return false
	}
	return cmpOp(g < w, g == w, op)
}

func cmpOp(less, eq bool, op string) bool {
	switch op {
	case "$gt":
		return !less && !eq
	case "$gte":
		return !less
	case "$lt":
		return less
	default:
		return less || eq
	}
}

func regexMatches(re *regexp.Regexp, got any) bool {
	switch g := got.(type) {
	case string:
		return re.MatchString(g)
	case []any:
		for _, item := range g {
			if s, ok := item.(string); ok && re.MatchString(s) {
				return true
			}
		}
	}
	return false
}

// compileRegex accepts a plain pattern or the /pattern/flags form.
func compileRegex(s, options string) (*regexp.Regexp, error) {
	pat := s
	if len(s) >= 2 && s[0] == '/' {
		if end := strings.LastIndex(s, "/"); end > 0 {
			pat, options = s[1:end], options+s[end+1:]
		}
	}
	flags := ""
	for _, f := range options {
		switch f {
		case 'i', 'm', 's':
			if !strings.ContainsRune(flags, f) {
				flags += string(f)
			}
		default:
			return nil, fmt.Errorf("regex %q: flag %q is not supported (use i, m or s)", s, f)
		}
	}
	if flags != "" {
		pat = "(?" + flags + ")" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", s, err)
	}
	return re, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
