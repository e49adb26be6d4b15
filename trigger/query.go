package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/bus"
)

// This file compiles and evaluates a rule's `when`: a MongoDB query over the
// message data. taskotron-trigger evaluated it with python's mongoquery;
// where that library and MongoDB's documented semantics differ, this follows
// MongoDB (the README's trigger-rules section lists the differences). The
// query is compiled when the rules are read, so a mistake in it is reported
// then, with its line; only the parts that take a ${var} are checked again
// per message.

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

// queryError is a mistake in a query: where it was written (line, and the
// field and operator) and what is wrong.
type queryError struct {
	line  int
	where string // "name $in", "tag", "$and"
	err   error
}

func (e *queryError) Error() string { return fmt.Sprintf("%v (%s)", e.err, e.where) }
func (e *queryError) Unwrap() error { return e.err }

// ruleError renders an error of rule number rule (1-based, starting at
// ruleLine) of a rules file: file:line: problem (rule N, field operator).
func ruleError(file string, rule, ruleLine int, err error) string {
	// A problem found per message may quote the message (a pattern or a
	// type name a ${var} gave): it is cut, as it goes into logs.
	var qe *queryError
	if errors.As(err, &qe) {
		line := qe.line
		if line == 0 {
			line = ruleLine
		}
		return fmt.Sprintf("%s:%d: %s (rule %d, %s)", file, line, bus.Truncate(qe.err.Error(), 512), rule, bus.Truncate(qe.where, 128))
	}
	return fmt.Sprintf("%s:%d: %s (rule %d)", file, ruleLine, bus.Truncate(err.Error(), 512), rule)
}

func qerr(line int, where string, format string, a ...any) error {
	return &queryError{line: line, where: where, err: fmt.Errorf(format, a...)}
}

// match evaluates q against data after resolving placeholders with res. It
// compiles q each time: rules keep their compiled query (rule.query).
func match(q map[string]any, data map[string]any, res resolver) (bool, []Check, error) {
	cq, err := compileQuery(src{v: q})
	if err != nil {
		return false, nil, err
	}
	return cq.eval(data, res)
}

// src is a part of a query and where it was written: the YAML node when the
// query came from a rules file, nil when it came from a value.
type src struct {
	v    any
	n    *yaml.Node
	line int
	// data is set for a value a ${var} resolved to: it is compiled as it
	// is, never resolved again.
	data bool
}

type srcEntry struct {
	key  string
	line int // the key's line
	val  src
}

func (s src) node() *yaml.Node {
	n := s.n
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// entries are a map's keys in sorted order (so that checks come out in the
// same order however the query was read), with their lines.
func (s src) entries() []srcEntry {
	m, _ := s.v.(map[string]any)
	at := map[string]int{}
	n := s.node()
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			at[n.Content[i].Value] = i
		}
	}
	out := make([]srcEntry, 0, len(m))
	for _, k := range sortedKeys(m) {
		e := srcEntry{key: k, line: s.line, val: src{v: m[k], line: s.line, data: s.data}}
		if i, ok := at[k]; ok {
			e.line = n.Content[i].Line
			e.val.n, e.val.line = n.Content[i+1], n.Content[i+1].Line
		}
		out = append(out, e)
	}
	return out
}

// items are a list's elements with their lines.
func (s src) items() []src {
	l, _ := s.v.([]any)
	n := s.node()
	out := make([]src, len(l))
	for i, v := range l {
		out[i] = src{v: v, line: s.line, data: s.data}
		if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
			out[i].n, out[i].line = n.Content[i], n.Content[i].Line
		}
	}
	return out
}

// query is a compiled query: every condition must hold.
type query struct {
	conds []qnode
}

// qnode is one top-level condition: a field's or a logical operator's.
type qnode interface {
	eval(doc map[string]any, res resolver) (Check, error)
}

func compileQuery(s src) (*query, error) {
	if _, ok := s.v.(map[string]any); !ok {
		return nil, qerr(s.line, "query", "a query is a mapping, got %s", short(s.v))
	}
	q := &query{}
	for _, e := range s.entries() {
		var n qnode
		var err error
		if strings.HasPrefix(e.key, "$") {
			n, err = compileLogical(e)
		} else {
			n, err = compileField(e.key, e.val)
		}
		if err != nil {
			return nil, err
		}
		if n != nil {
			q.conds = append(q.conds, n)
		}
	}
	return q, nil
}

func (q *query) eval(doc map[string]any, res resolver) (bool, []Check, error) {
	ok := true
	checks := make([]Check, 0, len(q.conds))
	for _, n := range q.conds {
		c, err := n.eval(doc, res)
		if err != nil {
			return false, nil, err
		}
		checks = append(checks, c)
		ok = ok && c.OK
	}
	return ok, checks, nil
}

// logicalNode is $and, $or, $nor, or $not at the top of a query (an
// extension mongoquery has and MongoDB has not; kept for old rules).
type logicalNode struct {
	op   string
	subs []*query
}

func compileLogical(e srcEntry) (qnode, error) {
	switch e.key {
	case "$comment":
		return nil, nil // a note for the reader, as in MongoDB
	case "$and", "$or", "$nor":
		if _, ok := e.val.v.([]any); !ok {
			return nil, qerr(e.val.line, e.key, "%s wants a list of queries, got %s", e.key, short(e.val.v))
		}
		items := e.val.items()
		if len(items) == 0 {
			return nil, qerr(e.val.line, e.key, "%s wants a non-empty list of queries", e.key)
		}
		n := &logicalNode{op: e.key}
		for _, it := range items {
			if _, ok := it.v.(map[string]any); !ok {
				return nil, qerr(it.line, e.key, "%s wants a list of queries, found %s", e.key, short(it.v))
			}
			sub, err := compileQuery(it)
			if err != nil {
				return nil, err
			}
			n.subs = append(n.subs, sub)
		}
		return n, nil
	case "$not":
		if _, ok := e.val.v.(map[string]any); !ok {
			return nil, qerr(e.val.line, e.key, "$not at the top of a query wants a query")
		}
		sub, err := compileQuery(e.val)
		if err != nil {
			return nil, err
		}
		return &logicalNode{op: "$not", subs: []*query{sub}}, nil
	}
	return nil, qerr(e.line, e.key, "unknown operator %s", e.key)
}

func (n *logicalNode) eval(doc map[string]any, res resolver) (Check, error) {
	c := Check{Op: n.op}
	if n.op == "$not" {
		m, checks, err := n.subs[0].eval(doc, res)
		if err != nil {
			return c, err
		}
		c.Sub, c.OK = checks, !m
		return c, nil
	}
	any1, all := false, true
	for _, sub := range n.subs {
		m, checks, err := sub.eval(doc, res)
		if err != nil {
			return c, err
		}
		c.Sub = append(c.Sub, Check{Op: "$and", Sub: checks, OK: m})
		any1 = any1 || m
		all = all && m
	}
	switch n.op {
	case "$and":
		c.OK = all
	case "$or":
		c.OK = any1
	default:
		c.OK = !any1
	}
	return c, nil
}

// fieldNode is `path: condition`: equality, or operators that must all hold.
type fieldNode struct {
	path  string
	parts []string
	preds []pred
}

func compileField(path string, s src) (qnode, error) {
	preds, err := compileCondition(path, s)
	if err != nil {
		return nil, err
	}
	return &fieldNode{path: path, parts: strings.Split(path, "."), preds: preds}, nil
}

// compileCondition compiles what stands after a field: an operator map
// ({$in: …, $nin: …}) or a value to be equal to.
func compileCondition(path string, s src) ([]pred, error) {
	ops, isOps, err := operatorMap(path, s)
	if err != nil {
		return nil, err
	}
	if !isOps {
		p, err := compileOp(path, "==", s, s.line)
		if err != nil {
			return nil, err
		}
		return []pred{p}, nil
	}
	var preds []pred
	var regex, options *srcEntry
	for i := range ops {
		switch ops[i].key {
		case "$regex":
			regex = &ops[i]
		case "$options":
			options = &ops[i]
		}
	}
	if options != nil && regex == nil {
		return nil, qerr(options.line, path+" $options", "$options needs a $regex next to it")
	}
	for _, e := range ops {
		var p pred
		var err error
		switch e.key {
		case "$options":
			continue // read with $regex
		case "$regex":
			var opts src
			if options != nil {
				opts = options.val
			}
			p, err = compileRegexPred(path, e.val, opts, e.line)
		default:
			p, err = compileOp(path, e.key, e.val, e.line)
		}
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return preds, nil
}

// operatorMap reads cond as a map of operators. A map with no $ keys is a
// value (an object to be equal to); one mixing both is a mistake.
func operatorMap(path string, s src) ([]srcEntry, bool, error) {
	m, ok := s.v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false, nil
	}
	entries := s.entries()
	var op, field string
	for _, e := range entries {
		if strings.HasPrefix(e.key, "$") {
			op = e.key
		} else {
			field = e.key
		}
	}
	switch {
	case op == "":
		return nil, false, nil
	case field != "":
		// Named by field and operator, as other errors are: a field may be
		// named "" (JSON allows it), an operator may not.
		return nil, false, qerr(s.line, strings.TrimSpace(path+" "+op), "mixes operators (%s) with fields (%s): use $and, or a dotted field", op, field)
	}
	return entries, true, nil
}

func (n *fieldNode) eval(doc map[string]any, res resolver) (Check, error) {
	ls := collect(doc, n.path, n.parts)
	got := leavesValue(ls)
	if len(n.preds) == 1 {
		return n.preds[0].eval(n.path, ls, got, res)
	}
	c := Check{Field: n.path, Op: "$and", OK: true}
	for _, p := range n.preds {
		sc, err := p.eval(n.path, ls, got, res)
		if err != nil {
			return c, err
		}
		c.Sub = append(c.Sub, sc)
		c.OK = c.OK && sc.OK
	}
	return c, nil
}

// leaf is one value a path leads to, or where it leads to nothing.
type leaf struct {
	v      any
	exists bool
	// single is set for the elements $elemMatch tests: an array there is a
	// value of its own, not a set of values.
	single bool
}

// collect follows a dotted path as MongoDB does: through objects by key,
// through an array by index when the part is a number, and otherwise
// through every object in an array, collecting the field of each (so that
// _msg.update.builds.nvr gives the NVR of every build). A path that leads
// nowhere gives one missing leaf. A key holding the whole dotted path is
// taken as it is first (message data keys are plain, headers may not be).
func collect(doc map[string]any, path string, parts []string) []leaf {
	if v, ok := doc[path]; ok {
		return []leaf{{v: v, exists: true}}
	}
	out := walk(doc, parts, nil)
	if len(out) == 0 {
		out = append(out, leaf{})
	}
	return out
}

func walk(cur any, parts []string, out []leaf) []leaf {
	if len(parts) == 0 {
		return append(out, leaf{v: cur, exists: true})
	}
	switch c := cur.(type) {
	case map[string]any:
		v, ok := c[parts[0]]
		if !ok {
			return append(out, leaf{})
		}
		return walk(v, parts[1:], out)
	case []any:
		if i, err := strconv.Atoi(parts[0]); err == nil && i >= 0 && isDigits(parts[0]) {
			if i >= len(c) {
				return append(out, leaf{})
			}
			return walk(c[i], parts[1:], out)
		}
		// Only objects are stepped into: MongoDB does not descend into
		// arrays nested in arrays along a path.
		for _, e := range c {
			if m, ok := e.(map[string]any); ok {
				out = walk(m, parts, out)
			}
		}
		return out
	case []string:
		return walk(normalise(c), parts, out)
	}
	return append(out, leaf{})
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// leavesValue is what a check shows as got: the one value, or the list of
// the values found.
func leavesValue(ls []leaf) any {
	if len(ls) == 1 {
		return ls[0].v
	}
	var vs []any
	for _, l := range ls {
		if l.exists {
			vs = append(vs, l.v)
		}
	}
	return vs
}

// anyValue reports whether one of the values of the leaves satisfies f: a
// leaf's value, or, when it is an array, one of its elements (MongoDB's
// rule for every operator but $size, $all, $elemMatch and $exists).
func anyValue(ls []leaf, f func(any) bool) bool {
	for _, l := range ls {
		if !l.exists {
			continue
		}
		if f(l.v) {
			return true
		}
		if list, ok := l.v.([]any); ok && !l.single {
			for _, e := range list {
				if f(e) {
					return true
				}
			}
		}
	}
	return false
}

// pred is one operator applied to a field's leaves.
type pred interface {
	eval(field string, ls []leaf, got any, res resolver) (Check, error)
}

// opFunc is an operator whose argument is known.
type opFunc struct {
	op   string
	want any
	test func(ls []leaf) bool
}

func (p *opFunc) eval(field string, ls []leaf, got any, _ resolver) (Check, error) {
	return Check{Field: field, Op: p.op, Want: p.want, Got: got, OK: p.test(ls)}, nil
}

// deferred is an operator whose argument holds a ${var}: it is resolved
// per message, and the value compiled then.
type deferred struct {
	where   string
	raw     src
	compile func(v src) (pred, error)
}

func (p *deferred) eval(field string, ls []leaf, got any, res resolver) (Check, error) {
	v, err := res.value(p.raw.v)
	if err != nil {
		return Check{}, &queryError{line: p.raw.line, where: p.where, err: err}
	}
	cp, err := p.compile(src{v: v, line: p.raw.line, data: true})
	if err != nil {
		return Check{}, err
	}
	return cp.eval(field, ls, got, res)
}

// hasPlaceholder reports whether v holds a ${var} anywhere.
func hasPlaceholder(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, phOpen)
	case []any:
		for _, e := range x {
			if hasPlaceholder(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.Contains(k, phOpen) || hasPlaceholder(e) {
				return true
			}
		}
	}
	return false
}

// compileOp compiles one operator of a field (all but $regex/$options);
// "==" is equality written as `field: value`.
func compileOp(field, op string, s src, line int) (pred, error) {
	where := field + " " + op
	if op == "==" {
		where = field
		if field == "" {
			where = `""` // JSON allows a field with no name
		}
	}
	if !s.data {
		str, isStr := s.v.(string)
		// A structural operator takes a whole ${var} as its argument;
		// inside one, each value defers on its own.
		if structural[op] && isStr && strings.Contains(str, phOpen) || !structural[op] && hasPlaceholder(s.v) {
			return &deferred{where: where, raw: s, compile: func(v src) (pred, error) { return compileOp(field, op, v, line) }}, nil
		}
	}
	switch op {
	case "$not":
		return compileNot(field, where, s)
	case "$elemMatch":
		return compileElemMatch(field, where, s)
	case "$all":
		return compileAll(field, where, s)
	}
	if _, known := valueOps[op]; !known {
		return nil, qerr(line, where, "unknown operator %s", op)
	}
	return compileValueOp(field, op, where, s)
}

// structural operators take queries or operators as their argument; the
// others take values.
var structural = map[string]bool{"$not": true, "$elemMatch": true, "$all": true}

var valueOps = map[string]struct{}{
	"==": {}, "$eq": {}, "$ne": {}, "$gt": {}, "$gte": {}, "$lt": {}, "$lte": {}, "$in": {}, "$nin": {},
	"$exists": {}, "$size": {}, "$type": {}, "$mod": {},
}

func compileValueOp(field, op, where string, s src) (pred, error) {
	want := s.v
	switch op {
	case "==", "$eq", "$ne":
		eq := &eqPred{want: want, implicit: op == "=="}
		if op == "$ne" {
			return &opFunc{op: op, want: want, test: func(ls []leaf) bool { return !eq.test(ls) }}, nil
		}
		return eq, nil
	case "$gt", "$gte", "$lt", "$lte":
		return &opFunc{op: op, want: want, test: func(ls []leaf) bool {
			if want == nil && (op == "$gte" || op == "$lte") {
				return (&eqPred{}).test(ls) // null is equal to null and to nothing
			}
			return anyValue(ls, func(v any) bool { return compare(v, want, op) })
		}}, nil
	case "$in", "$nin":
		list, ok := want.([]any)
		if !ok {
			return nil, qerr(s.line, where, "%s wants a list, got %s", op, short(want))
		}
		for _, item := range list {
			if m, ok := item.(map[string]any); ok && hasOperatorKey(m) {
				return nil, qerr(s.line, where, "%s wants values, found operators %s", op, short(item))
			}
		}
		eqs := make([]*eqPred, len(list))
		for i, w := range list {
			eqs[i] = &eqPred{want: w}
		}
		in := op == "$in"
		return &opFunc{op: op, want: want, test: func(ls []leaf) bool {
			for _, eq := range eqs {
				if eq.test(ls) {
					return in
				}
			}
			return !in
		}}, nil
	case "$exists":
		var b bool
		switch x := want.(type) {
		case bool:
			b = x
		default:
			f, ok := toFloat(x)
			if !ok {
				return nil, qerr(s.line, where, "$exists wants true or false, got %s", short(want))
			}
			b = f != 0 // MongoDB reads a number as a boolean here
		}
		return &opFunc{op: op, want: b, test: func(ls []leaf) bool {
			for _, l := range ls {
				if l.exists {
					return b
				}
			}
			return !b
		}}, nil
	case "$size":
		f, ok := toFloat(want)
		if !ok || f != math.Trunc(f) || f < 0 || f > math.MaxInt32 {
			return nil, qerr(s.line, where, "$size wants a whole number from 0 (MongoDB has no ranges for $size; use field.N: {$exists: true}), got %s", short(want))
		}
		n := int(f)
		return &opFunc{op: op, want: want, test: func(ls []leaf) bool {
			for _, l := range ls {
				if list, ok := l.v.([]any); ok && l.exists && len(list) == n {
					return true
				}
			}
			return false
		}}, nil
	case "$type":
		types, err := bsonTypes(want)
		if err != nil {
			return nil, &queryError{line: s.line, where: where, err: err}
		}
		return &opFunc{op: op, want: want, test: func(ls []leaf) bool {
			for _, l := range ls {
				if !l.exists {
					continue
				}
				if types[typeOf(l.v)] || (types["number"] && isNumber(l.v)) {
					return true
				}
				if list, ok := l.v.([]any); ok && !l.single {
					for _, e := range list {
						if types[typeOf(e)] || (types["number"] && isNumber(e)) {
							return true
						}
					}
				}
			}
			return false
		}}, nil
	case "$mod":
		d, r, err := modArgs(want)
		if err != nil {
			return nil, &queryError{line: s.line, where: where, err: err}
		}
		return &opFunc{op: op, want: want, test: func(ls []leaf) bool {
			return anyValue(ls, func(v any) bool {
				f, ok := toFloat(v)
				if !ok || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<63 {
					return false
				}
				return int64(f)%d == r // Go's % keeps the dividend's sign, as MongoDB's does
			})
		}}, nil
	}
	return nil, qerr(s.line, where, "unknown operator %s", op)
}

func hasOperatorKey(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

// eqPred is MongoDB equality: a value equals want, or an array holds an
// element equal to it; null matches null and a missing field.
type eqPred struct {
	want     any
	implicit bool // written as `field: value`
}

func (p *eqPred) test(ls []leaf) bool {
	for _, l := range ls {
		if !l.exists {
			if p.want == nil {
				return true
			}
			continue
		}
		if equal(l.v, p.want) {
			return true
		}
		if list, ok := l.v.([]any); ok && !l.single {
			for _, e := range list {
				if equal(e, p.want) {
					return true
				}
			}
		}
	}
	return false
}

func (p *eqPred) eval(field string, ls []leaf, got any, _ resolver) (Check, error) {
	op := "$eq"
	if p.implicit {
		op = "=="
	}
	return Check{Field: field, Op: op, Want: p.want, Got: got, OK: p.test(ls)}, nil
}

// compileNot: $not over operators, or over a /regex/.
func compileNot(field, where string, s src) (pred, error) {
	if str, ok := s.v.(string); ok {
		pat, opts, ok := slashRegex(str)
		if !ok {
			return nil, qerr(s.line, where, "$not wants operators or a /regex/, got %s", short(str))
		}
		re, err := compileRegex(pat, opts)
		if err != nil {
			return nil, &queryError{line: s.line, where: where, err: err}
		}
		rp := &regexPred{re: re, want: str}
		return &notPred{subs: []pred{rp}, want: str}, nil
	}
	m, ok := s.v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, qerr(s.line, where, "$not wants operators or a /regex/, got %s", short(s.v))
	}
	if _, isOps, err := operatorMap(field, s); err != nil || !isOps {
		if err != nil {
			return nil, err
		}
		return nil, qerr(s.line, where, "$not wants operators or a /regex/, got %s", short(s.v))
	}
	subs, err := compileCondition(field, s)
	if err != nil {
		return nil, err
	}
	return &notPred{subs: subs}, nil
}

type notPred struct {
	subs []pred
	want any
}

func (p *notPred) eval(field string, ls []leaf, got any, res resolver) (Check, error) {
	c := Check{Field: field, Op: "$not", Want: p.want, Got: got}
	all := true
	for _, sp := range p.subs {
		sc, err := sp.eval(field, ls, got, res)
		if err != nil {
			return c, err
		}
		c.Sub = append(c.Sub, sc)
		all = all && sc.OK
	}
	c.OK = !all
	return c, nil
}

// compileAll: every item must be equal to a value of the field (as with
// `field: item`), or be an {$elemMatch: …} that holds. An empty list
// matches nothing, as in MongoDB.
func compileAll(field, where string, s src) (pred, error) {
	if _, ok := s.v.([]any); !ok {
		return nil, qerr(s.line, where, "$all wants a list, got %s", short(s.v))
	}
	p := &allPred{want: s.v}
	for _, it := range s.items() {
		if m, ok := it.v.(map[string]any); ok && hasOperatorKey(m) {
			em, isEM := m["$elemMatch"]
			if !isEM || len(m) != 1 {
				return nil, qerr(it.line, where, "$all wants values or {$elemMatch: …}, found %s", short(it.v))
			}
			e := it.entries()[0]
			sub, err := compileElemMatch(field, field+" $all $elemMatch", src{v: em, n: e.val.n, line: e.val.line})
			if err != nil {
				return nil, err
			}
			p.subs = append(p.subs, sub)
			continue
		}
		if !it.data && hasPlaceholder(it.v) {
			p.subs = append(p.subs, &deferred{where: where, raw: it, compile: func(v src) (pred, error) { return &eqPred{want: v.v}, nil }})
			continue
		}
		p.subs = append(p.subs, &eqPred{want: it.v})
	}
	return p, nil
}

type allPred struct {
	subs []pred
	want any
}

func (p *allPred) eval(field string, ls []leaf, got any, res resolver) (Check, error) {
	c := Check{Field: field, Op: "$all", Want: p.want, Got: got, OK: len(p.subs) > 0}
	for _, sp := range p.subs {
		sc, err := sp.eval(field, ls, got, res)
		if err != nil {
			return c, err
		}
		c.OK = c.OK && sc.OK
	}
	return c, nil
}

// compileElemMatch: some element of an array field satisfies every
// operator ({$gte: 80, $lt: 85}), or, for a query ({nvr: {$regex: …}}), is
// an object the query matches.
func compileElemMatch(field, where string, s src) (pred, error) {
	m, ok := s.v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, qerr(s.line, where, "$elemMatch wants a query or operators, got %s", short(s.v))
	}
	p := &elemMatchPred{want: s.v}
	valueForm := true
	for k := range m {
		if !strings.HasPrefix(k, "$") || k == "$and" || k == "$or" || k == "$nor" {
			valueForm = false
		}
	}
	var err error
	if valueForm {
		p.ops, err = compileCondition(field, s)
	} else {
		for k := range m {
			if strings.HasPrefix(k, "$") && !logicalOps[k] {
				return nil, qerr(s.line, where, "$elemMatch mixes operators (%s) with fields: use {$elemMatch: {field: {%s: …}}}", k, k)
			}
		}
		p.query, err = compileQuery(s)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

var logicalOps = map[string]bool{"$and": true, "$or": true, "$nor": true, "$not": true, "$comment": true}

type elemMatchPred struct {
	ops   []pred
	query *query
	want  any
}

func (p *elemMatchPred) eval(field string, ls []leaf, got any, res resolver) (Check, error) {
	c := Check{Field: field, Op: "$elemMatch", Want: p.want, Got: got}
	for _, l := range ls {
		list, ok := l.v.([]any)
		if !ok || !l.exists {
			continue
		}
		for _, e := range list {
			m, err := p.element(field, e, res)
			if err != nil {
				return c, err
			}
			if m {
				c.OK = true
				return c, nil
			}
		}
	}
	return c, nil
}

func (p *elemMatchPred) element(field string, e any, res resolver) (bool, error) {
	if p.query != nil {
		doc, ok := e.(map[string]any)
		if !ok {
			return false, nil
		}
		m, _, err := p.query.eval(doc, res)
		return m, err
	}
	ls := []leaf{{v: e, exists: true, single: true}}
	for _, op := range p.ops {
		c, err := op.eval(field, ls, e, res)
		if err != nil || !c.OK {
			return false, err
		}
	}
	return true, nil
}

// regexPred: a string value (or a string in an array) matches.
type regexPred struct {
	re   *regexp.Regexp
	want any
}

func (p *regexPred) eval(field string, ls []leaf, got any, _ resolver) (Check, error) {
	ok := anyValue(ls, func(v any) bool {
		s, isStr := v.(string)
		return isStr && p.re.MatchString(s)
	})
	return Check{Field: field, Op: "$regex", Want: p.want, Got: got, OK: ok}, nil
}

func compileRegexPred(field string, pat, opts src, line int) (pred, error) {
	where := field + " $regex"
	if !pat.data && (hasPlaceholder(pat.v) || hasPlaceholder(opts.v)) {
		return &deferredRegex{field: field, line: line, pat: pat, opts: opts}, nil
	}
	s, ok := pat.v.(string)
	if !ok {
		return nil, qerr(pat.line, where, "$regex wants a string, got %s", short(pat.v))
	}
	var o string
	if opts.v != nil {
		if o, ok = opts.v.(string); !ok {
			return nil, qerr(opts.line, field+" $options", "$options wants a string of flags, got %s", short(opts.v))
		}
	}
	re, err := compileRegex(s, o)
	if err != nil {
		return nil, &queryError{line: pat.line, where: where, err: err}
	}
	return &regexPred{re: re, want: s}, nil
}

// deferredRegex is a $regex (or its $options) with a ${var}: the pattern
// is compiled per message. It is not cached: the patterns come from the
// messages, and a cache of them would grow without bound.
type deferredRegex struct {
	field     string
	line      int
	pat, opts src
}

func (p *deferredRegex) eval(field string, ls []leaf, got any, res resolver) (Check, error) {
	pv, err := res.value(p.pat.v)
	if err == nil {
		var ov any
		if ov, err = res.value(p.opts.v); err == nil {
			cp, err := compileRegexPred(p.field, src{v: pv, line: p.pat.line, data: true}, src{v: ov, line: p.opts.line, data: true}, p.line)
			if err != nil {
				return Check{}, err
			}
			return cp.eval(field, ls, got, res)
		}
	}
	return Check{}, &queryError{line: p.pat.line, where: p.field + " $regex", err: err}
}

// slashRegex reads the /pattern/flags form mongoquery accepted (and the
// rules use): flags are up to four of i, m, s, x. Other strings are plain
// patterns.
func slashRegex(s string) (pat, flags string, ok bool) {
	if len(s) < 3 || s[0] != '/' {
		return s, "", false
	}
	end := strings.LastIndexByte(s, '/')
	if end <= 1 {
		return s, "", false
	}
	flags = s[end+1:]
	if len(flags) > 4 || strings.Trim(flags, "imsx") != "" {
		return s, "", false
	}
	return s[1:end], flags, true
}

// compileRegex compiles a $regex pattern (plain or /pattern/flags) with
// $options. The flags are MongoDB's: i, m, s, and x (whitespace and
// #-comments in the pattern are ignored).
func compileRegex(s, options string) (*regexp.Regexp, error) {
	pat := s
	if p, f, ok := slashRegex(s); ok {
		pat, options = p, options+f
	}
	flags := ""
	extended := false
	for _, f := range options {
		switch f {
		case 'i', 'm', 's':
			if !strings.ContainsRune(flags, f) {
				flags += string(f)
			}
		case 'x':
			extended = true
		default:
			return nil, fmt.Errorf("regex %q: flag %q is not supported (use i, m, s or x)", bus.Truncate(s, 200), f)
		}
	}
	if extended {
		pat = stripExtended(pat)
	}
	if flags != "" {
		pat = "(?" + flags + ")" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %s", bus.Truncate(s, 200), bus.Truncate(err.Error(), 300))
	}
	return re, nil
}

// stripExtended applies the x flag as PCRE (MongoDB's engine) does: white
// space, and # up to the end of the line, are dropped unless escaped or in
// a character class or a \Q…\E quote.
func stripExtended(pat string) string {
	var b strings.Builder
	inClass, quoted := false, false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(pat) && pat[i+1] == 'E' {
				quoted = false
				b.WriteString(`\E`)
				i++
				continue
			}
			b.WriteByte(c)
		case c == '\\' && i+1 < len(pat):
			if pat[i+1] == 'Q' {
				quoted = true
			}
			b.WriteByte(c)
			b.WriteByte(pat[i+1])
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			// A ] right after [ or [^ is a literal, not the end.
			if i+1 < len(pat) && pat[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pat) && pat[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		case c == '#':
			for i+1 < len(pat) && pat[i+1] != '\n' {
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// bsonTypes reads $type's argument: an alias or a number, or a list of them.
func bsonTypes(v any) (map[string]bool, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	if len(list) == 0 {
		return nil, errors.New("$type wants a type, got an empty list")
	}
	out := map[string]bool{}
	for _, item := range list {
		switch x := item.(type) {
		case string:
			if _, ok := bsonAliases[x]; !ok && x != "number" {
				return nil, fmt.Errorf("$type: unknown type %q", x)
			}
			out[x] = true
		default:
			f, ok := toFloat(item)
			if !ok || f != math.Trunc(f) {
				return nil, fmt.Errorf("$type wants a type name or number, got %s", short(item))
			}
			name, ok := bsonCodes[int(f)]
			if !ok {
				return nil, fmt.Errorf("$type: unknown type number %v", f)
			}
			out[name] = true
		}
	}
	return out, nil
}

// bsonAliases are MongoDB's type names and numbers. JSON messages only hold
// double, int, long, string, object, array, bool and null; the others are
// accepted and match nothing.
var bsonAliases = map[string]int{
	"double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6, "objectId": 7,
	"bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12, "javascript": 13, "symbol": 14,
	"javascriptWithScope": 15, "int": 16, "timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}

var bsonCodes = func() map[int]string {
	m := map[int]string{}
	for k, v := range bsonAliases {
		m[v] = k
	}
	return m
}()

// typeOf names a JSON value's type as MongoDB would have stored it: a whole
// number is an int (a long beyond 32 bits), another number a double.
func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any, []string:
		return "array"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "double"
		}
	}
	f, ok := toFloat(v)
	if !ok {
		return ""
	}
	switch {
	case f != math.Trunc(f) || math.IsInf(f, 0):
		return "double"
	case f >= math.MinInt32 && f <= math.MaxInt32:
		return "int"
	case f >= -(1<<63) && f < 1<<63:
		return "long"
	}
	return "double"
}

func isNumber(v any) bool {
	_, ok := toFloat(v)
	return ok
}

// modArgs reads [divisor, remainder]: two finite numbers that fit 64 bits,
// truncated toward zero; the divisor may not be 0.
func modArgs(v any) (int64, int64, error) {
	list, ok := v.([]any)
	if !ok {
		return 0, 0, fmt.Errorf("$mod wants [divisor, remainder], got %s", short(v))
	}
	if len(list) != 2 {
		return 0, 0, fmt.Errorf("$mod wants [divisor, remainder], got %d elements", len(list))
	}
	var n [2]int64
	for i, item := range list {
		f, ok := toFloat(item)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<63 {
			return 0, 0, fmt.Errorf("$mod wants [divisor, remainder] as numbers that fit 64 bits, got %s", short(item))
		}
		n[i] = int64(f)
	}
	if n[0] == 0 {
		return 0, 0, errors.New("$mod: the divisor cannot be 0")
	}
	return n[0], n[1], nil
}

// lookup follows a dotted key through maps and lists (a number indexes a
// list) to one value; it is what ${var} uses.
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
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// equal is MongoDB's equality of two values: numbers by value, objects
// and arrays element by element, and no value of one type equal to one of
// another (true is not 1).
func equal(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []string:
		return equal(normalise(x), b)
	case []any:
		y, ok := normalise(b).([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return false
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

// compare is $gt, $gte, $lt, $lte between values of one kind (numbers,
// strings, booleans); values of different kinds never compare, as in
// MongoDB.
func compare(got, want any, op string) bool {
	if g, ok := toFloat(got); ok {
		w, ok := toFloat(want)
		if !ok || math.IsNaN(g) || math.IsNaN(w) {
			return false
		}
		return cmpOp(g < w, g == w, op)
	}
	switch g := got.(type) {
	case string:
		w, ok := want.(string)
		return ok && cmpOp(g < w, g == w, op)
	case bool:
		w, ok := want.(bool)
		return ok && cmpOp(!g && w, g == w, op)
	case nil:
		return want == nil && (op == "$gte" || op == "$lte")
	}
	return false
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

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
