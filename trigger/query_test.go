package trigger

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// corpusData is the message data rules see for a corpus message.
func corpusData(t testing.TB, name string) map[string]any {
	t.Helper()
	d, err := Normalise(loadCorpus(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d["critpath_pkgs"] = []any{"python-ogr", "kernel"}
	return d
}

// evalWhen parses `when` as a rule of a rules file and evaluates it.
func evalWhen(t *testing.T, when string, data map[string]any, vars map[string]any) (bool, []Check, error) {
	t.Helper()
	r, err := ParseRules("q.yml", []byte("- when: "+when+"\n  do: [{tasks: [t]}]\n"), vars)
	if err != nil {
		return false, nil, err
	}
	return r.rules[0].query.eval(data, resolver{data: data, vars: vars})
}

// Queries over real messages, with what MongoDB answers for the same
// document. Where mongoquery (taskotron-trigger's evaluator) answers
// differently, the comment says so.
func TestQueryCorpus(t *testing.T) {
	cases := []struct {
		msg, when string
		want      bool
	}{
		// A path through a list of objects collects the field of each.
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: freedv-1.2-1.fc24}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: freedv-1.2-2.fc24}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$regex: '^codec2-'}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$in: [x, codec2-0.6-1.fc24]}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$nin: [x, codec2-0.6-1.fc24]}}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$ne: codec2-0.6-1.fc24}}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$gt: e}}", true}, // freedv > e
		{"bodhi-update-edit__4.json", "{_msg.update.builds.1.nvr: freedv-1.2-1.fc24}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.2.nvr: {$exists: true}}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$all: [freedv-1.2-1.fc24, codec2-0.6-1.fc24]}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$all: [freedv-1.2-1.fc24, kernel-1-1.fc24]}}", false},
		// The collected values are not an array of their own: $size and
		// equality to a list see each build's nvr (mongoquery: true, true).
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$size: 2}}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: [codec2-0.6-1.fc24, freedv-1.2-1.fc24]}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds: {$size: 2}}", true},
		{"bodhi-update-edit__4.json", "{builds: [codec2-0.6-1.fc24, freedv-1.2-1.fc24]}", true},
		{"bodhi-update-edit__4.json", "{builds: [freedv-1.2-1.fc24, codec2-0.6-1.fc24]}", false}, // order counts
		{"bodhi-update-edit__4.json", "{_msg.update.builds: {$elemMatch: {nvr: {$regex: '^freedv'}, signed: false}}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds: {$elemMatch: {nvr: {$regex: '^freedv'}, signed: true}}}", false},
		{"bodhi-update-edit__4.json", "{_msg.update.builds: {$all: [{$elemMatch: {nvr: {$regex: '^freedv'}}}, {$elemMatch: {epoch: 0}}]}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.epoch: {$type: int}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.signed: {$type: [string, bool]}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.epoch: {$mod: [2, 0]}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.missing: null}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.missing: {$exists: false}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.builds.nvr: {$exists: true}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.release.version: {$type: string}}", true},
		{"bodhi-update-edit__4.json", "{_msg.update.release.version: {$mod: [4, 0]}}", false}, // "24" is a string
		{"bodhi-update-edit__4.json", "{_msg.update.critpath: {$type: number}}", false},
		{"bodhi-update-edit__4.json", "{_msg.new_builds: {$all: [codec2-0.6-1.fc24]}}", true},
		{"bodhi-update-ready-for-testing__6.json", "{_msg.artifact.builds.id: {$gt: 2541167, $lt: 2541169}}", true},
		{"bodhi-update-ready-for-testing__6.json", "{_msg.artifact.builds.nvr: {$regex: '/\\.ELN\\d+$$/i'}}", true},
		{"bodhi-update-ready-for-testing__6.json", "{_msg.update.critpath_groups: {$regex: \"critical-path- # a group\\n  server$$  # the server one\", $options: x}}", true},
		{"bodhi-update-ready-for-testing__6.json", "{_msg.update.critpath_groups: {$regex: 'critical-path- server'}}", false},
		// Messages with null, mixed lists and numbers.
		{"koji-build-state-change__10.json", "{_msg.epoch: null}", true},
		{"koji-build-state-change__10.json", "{_msg.epoch: {$exists: true}}", true},
		{"koji-build-state-change__10.json", "{_msg.epoch: {$type: 'null'}}", true},
		{"koji-build-state-change__10.json", "{_msg.nothing: {$type: 'null'}}", false},
		{"koji-build-state-change__10.json", "{_msg.nothing: null}", true},
		{"koji-build-state-change__10.json", "{_msg.owner: null}", false},
		{"koji-build-state-change__10.json", "{_msg.epoch: {$ne: null}}", false},
		{"koji-build-state-change__10.json", "{_msg.epoch: {$in: [null, 0]}}", true},
		{"koji-build-state-change__10.json", "{_msg.request: {$size: 3}}", true},
		{"koji-build-state-change__10.json", "{_msg.request: {$type: object}}", true}, // the {} element
		{"koji-build-state-change__10.json", "{_msg.request: {$type: array}}", true},
		{"koji-build-state-change__10.json", "{_msg.request: {$elemMatch: {$regex: '^git\\+https'}}}", true},
		{"koji-build-state-change__10.json", "{_msg.request: {$all: [rawhide]}}", true},
		{"koji-build-state-change__10.json", "{_msg.request: {$all: []}}", false},            // mongoquery: true
		{"koji-build-state-change__10.json", "{_msg.request: {$regex: '^rawhide$$'}}", true}, // mongoquery: false
		{"koji-build-state-change__10.json", "{_msg.request: {$ne: rawhide}}", false},        // mongoquery: true
		{"koji-build-state-change__10.json", "{_msg.request: {$eq: rawhide}}", true},         // mongoquery: false
		{"koji-build-state-change__10.json", "{_msg.name: {$type: array}}", false},           // mongoquery: true (a str is a Sequence)
		{"koji-build-state-change__10.json", "{_msg.name: {$elemMatch: {$eq: p}}}", false},   // mongoquery: true (it iterates the letters)
		{"koji-build-state-change__10.json", "{_msg.build_id: {$mod: [2, 0]}}", true},
		{"koji-build-state-change__10.json", "{_msg.task_id: {$mod: [1000, 894]}}", true},
		{"koji-build-state-change__10.json", "{_msg.task_id: {$mod: [1000.9, 894.2]}}", true}, // truncated toward zero
		{"koji-build-state-change__10.json", "{_msg.name: {$mod: [2, 0]}}", false},            // mongoquery: raises
		{"koji-build-state-change__10.json", "{_msg.new: true}", false},                       // mongoquery: true (1 == True)
		{"koji-build-state-change__10.json", "{_msg.new: 1.0}", true},
		{"koji-build-state-change__10.json", "{_msg.new: {$type: [long, int]}}", true},
		{"koji-build-state-change__10.json", "{_msg.new: {$type: 16}}", true},
		{"koji-build-state-change__10.json", "{_msg.new: {$type: double}}", false},
		{"koji-build-state-change__10.json", "{_msg.build_id: {$type: date}}", false},
		{"koji-build-state-change__10.json", "{name: {$in: ${critpath_pkgs}}, _msg.instance: primary}", true},
		{"koji-build-state-change__10.json", "{_msg.request.2: {}}", true},
		{"koji-build-state-change__10.json", "{_msg.request.0: {$regex: '\\.git#[0-9a-f]{40}$$'}}", true},
		{"koji-build-state-change__10.json", "{name: {$not: {$regex: '^python-', $options: i}}}", false},
		{"koji-build-state-change__10.json", "{name: {$regex: '^PYTHON-', $options: i}}", true},
		{"koji-tag__3.json", "{tag: {$regex: '/^f[0-9]{2}  -updates-pending$$/x'}}", true},
		{"koji-tag__3.json", "{_msg.tag_id: {$gte: 6446, $lte: 6446}}", true},
		{"koji-tag__3.json", "{$and: [{tag: {$exists: true}}, {$or: [{name: http-parser}, {name: x}]}], $nor: [{user: {$ne: bodhi}}]}", true},
		{"koji-tag__3.json", "{$comment: 'only the updates tags', tag: {$regex: updates}}", true},
	}
	for _, c := range cases {
		d := corpusData(t, c.msg)
		got, checks, err := evalWhen(t, c.when, d, nil)
		if err != nil {
			t.Errorf("%s %s: %v", c.msg, c.when, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s %s = %v, want %v (%v)", c.msg, c.when, got, c.want, checks)
		}
	}
}

// Edge cases on small documents, each against MongoDB's documented rule.
func TestQueryEdgeCases(t *testing.T) {
	doc := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		doc, when string
		want      bool
	}{
		// $mod: the remainder has the dividend's sign.
		{`{"n": -5}`, "{n: {$mod: [3, -2]}}", true},
		{`{"n": -5}`, "{n: {$mod: [3, 1]}}", false}, // python's -5 % 3 is 1
		{`{"n": 5}`, "{n: {$mod: [-3, 2]}}", true},
		{`{"n": 5.9}`, "{n: {$mod: [5, 0]}}", true},
		{`{"n": [1, 7]}`, "{n: {$mod: [7, 0]}}", true},
		{`{"n": 1e300}`, "{n: {$mod: [7, 0]}}", false},
		// Arrays nested in arrays are not stepped into along a path, and
		// scalars in the way lead nowhere.
		{`{"a": [[{"b": 1}]]}`, "{a.b: 1}", false},
		{`{"a": [{"b": [1, 2]}, {"b": 3}]}`, "{a.b: 2}", true},
		{`{"a": [{"b": [1, 2]}, {"b": 3}]}`, "{a.b: [1, 2]}", true},
		{`{"a": [{"b": [1, 2]}, {"b": 3}]}`, "{a.b: {$size: 2}}", true},
		{`{"a": [{"b": [1, 2]}, {"b": 3}]}`, "{a.b: {$all: [1, 3]}}", true}, // mongoquery: false
		{`{"a": [{"b": {"c": [{"d": "x"}]}}]}`, "{a.b.c.d: x}", true},
		{`{"a": [1, 2]}`, "{a.b: {$exists: true}}", false},
		{`{"a": []}`, "{a.b: null}", true},
		{`{"a": []}`, "{a: {$size: 0}}", true},
		{`{"a": []}`, "{a: []}", true},
		{`{"a": [[]]}`, "{a: []}", true},
		{`{"a": 5}`, "{a.0: 5}", false},
		{`{"a": [5]}`, "{a.0: 5}", true},
		{`{"a": {"0": 5}}`, "{a.0: 5}", true},
		// Null and missing.
		{`{}`, "{a: null}", true},
		{`{"a": [1, null]}`, "{a: null}", true},
		{`{"a": [1, 2]}`, "{a: null}", false},
		{`{}`, "{a: {$ne: 1}}", true},
		{`{}`, "{a: {$nin: [1]}}", true},
		{`{}`, "{a: {$in: [null]}}", true},
		{`{}`, "{a: {$gte: null}}", true},
		{`{}`, "{a: {$gt: null}}", false},
		{`{}`, "{a: {$not: {$regex: x}}}", true},
		{`{}`, "{a: {$not: '/x/'}}", true},
		{`{}`, "{a: {$size: 0}}", false},
		{`{}`, "{a: {$all: [null]}}", true},
		{`{"a": null}`, "{a: {$exists: true}}", true},
		{`{"a": null}`, "{a: {$exists: 0}}", false},
		// Types do not mix.
		{`{"a": 1}`, "{a: '1'}", false},
		{`{"a": "b"}`, "{a: {$gt: 1}}", false},
		{`{"a": "b"}`, "{a: {$lt: 1}}", false},
		{`{"a": false}`, "{a: {$lt: true}}", true},
		{`{"a": 0}`, "{a: false}", false},
		// Objects and arrays compare whole.
		{`{"a": {"x": 1, "y": [2]}}`, "{a: {x: 1, y: [2]}}", true},
		{`{"a": {"x": 1, "y": [2]}}`, "{a: {x: 1}}", false},
		{`{"a": [{"x": 1}]}`, "{a: {x: 1}}", true},
		{`{"a": [[1, 2], 3]}`, "{a: [1, 2]}", true},
		{`{"a": [[1, 2], 3]}`, "{a: {$all: [[1, 2], 3]}}", true},
		{`{"a": [1, 2, 3]}`, "{a: {$all: [3, 1]}}", true},
		{`{"a": 3}`, "{a: {$all: [3]}}", true},
		{`{"a": [1, 2]}`, "{a: {$in: [[1, 2]]}}", true},
		// $elemMatch: some one element satisfies everything.
		{`{"a": [1, 9]}`, "{a: {$gt: 2, $lt: 8}}", true}, // 9 > 2 and 1 < 8
		{`{"a": [1, 9]}`, "{a: {$elemMatch: {$gt: 2, $lt: 8}}}", false},
		{`{"a": [1, 5]}`, "{a: {$elemMatch: {$gt: 2, $lt: 8}}}", true},
		{`{"a": [[5]]}`, "{a: {$elemMatch: {$gt: 2}}}", false},
		{`{"a": [[5]]}`, "{a: {$elemMatch: {$size: 1}}}", true},
		{`{"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}`, "{a: {$elemMatch: {b: 1, c: 1}}}", false},
		{`{"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}`, "{a.b: 1, a.c: 1}", true},
		{`{"a": [{"b": 1}, 5]}`, "{a: {$elemMatch: {$or: [{b: 2}, {b: 1}]}}}", true},
		{`{"a": [5]}`, "{a: {$elemMatch: {b: {$exists: false}}}}", false}, // 5 is not an object
		{`{"a": {"b": 1}}`, "{a: {$elemMatch: {b: 1}}}", false},
		// $type.
		{`{"a": 1.5}`, "{a: {$type: double}}", true},
		{`{"a": 1.5}`, "{a: {$type: int}}", false},
		{`{"a": 5000000000}`, "{a: {$type: long}}", true},
		{`{"a": [[1]]}`, "{a: {$type: int}}", false},
		{`{"a": {"b": 1}}`, "{a: {$type: 3}}", true},
		// $regex and $not.
		{`{"a": 12}`, "{a: {$regex: '1'}}", false},
		{`{"a": "x\ny"}`, "{a: {$regex: '^y', $options: m}}", true},
		{`{"a": "x\ny"}`, "{a: {$regex: '^y'}}", false},
		{`{"a": "x\ny"}`, "{a: {$regex: 'x.y', $options: s}}", true},
		{`{"a": "a b#c"}`, "{a: {$regex: 'a\\ b\\#c', $options: x}}", true},
		{`{"a": "a b#c"}`, "{a: {$regex: 'a[ ]b[#]c', $options: x}}", true},
		{`{"a": "ab"}`, "{a: {$regex: \"a # comment\\n b\", $options: x}}", true},
		{`{"a": "a b"}`, "{a: {$regex: '\\Qa b\\E', $options: x}}", true},
		{`{"a": "/usr/bin"}`, "{a: {$regex: '/usr/bin'}}", true}, // not /pattern/flags
		{`{"a": [1, 9]}`, "{a: {$not: {$gt: 5}}}", false},
		{`{"a": [1, 2]}`, "{a: {$not: {$gt: 5}}}", true},
	}
	for _, c := range cases {
		d := doc(c.doc)
		got, checks, err := evalWhen(t, c.when, d, nil)
		if err != nil {
			t.Errorf("%s on %s: %v", c.when, c.doc, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s on %s = %v, want %v (%v)", c.when, c.doc, got, c.want, checks)
		}
	}
}

// A mistake in a query is found when the rules are read, and the error
// names the file and line, the rule, the field and the operator.
func TestQueryErrorsNameRuleAndOperator(t *testing.T) {
	cases := []struct{ when, want string }{
		{"{tags: {$all: x}}", `q.yml:3: $all wants a list, got "x" (rule 2, tags $all)`},
		{"{n: {$mod: [0, 1]}}", "q.yml:3: $mod: the divisor cannot be 0 (rule 2, n $mod)"},
		{"{n: {$mod: [2]}}", "q.yml:3: $mod wants [divisor, remainder], got 1 elements (rule 2, n $mod)"},
		{"{n: {$mod: [2, 1, 0]}}", "got 3 elements (rule 2, n $mod)"},
		{"{n: {$mod: [x, 1]}}", `$mod wants [divisor, remainder] as numbers that fit 64 bits, got "x" (rule 2, n $mod)`},
		{"{n: {$type: wat}}", `q.yml:3: $type: unknown type "wat" (rule 2, n $type)`},
		{"{n: {$type: 99}}", "$type: unknown type number 99 (rule 2, n $type)"},
		{"{n: {$type: []}}", "$type wants a type, got an empty list (rule 2, n $type)"},
		{"{n: {$size: -1}}", "$size wants a whole number from 0"},
		{"{n: {$size: 1.5}}", "(rule 2, n $size)"},
		{"{n: {$size: {$gt: 1}}}", "MongoDB has no ranges for $size"},
		{"{n: {$elemMatch: {}}}", "$elemMatch wants a query or operators, got {} (rule 2, n $elemMatch)"},
		{"{n: {$elemMatch: x}}", "(rule 2, n $elemMatch)"},
		{"{n: {$elemMatch: {$gt: 1, a: 2}}}", "$elemMatch mixes operators ($gt) with fields"},
		{"{n: {$options: i}}", "q.yml:3: $options needs a $regex next to it (rule 2, n $options)"},
		{"{n: {$regex: a, $options: q}}", `flag 'q' is not supported (use i, m, s or x) (rule 2, n $regex)`},
		{"{n: {$regex: [a]}}", "$regex wants a string"},
		{"{n: {$options: 5, $regex: a}}", "$options wants a string of flags"},
		{"{$and: []}", "$and wants a non-empty list of queries (rule 2, $and)"},
		{"{$or: {a: 1}}", "$or wants a list of queries"},
		{"{$nor: [a]}", `$nor wants a list of queries, found "a"`},
		{"{$where: 'this.a'}", "q.yml:3: unknown operator $where (rule 2, $where)"},
		{"{n: {$not: plain}}", `$not wants operators or a /regex/, got "plain" (rule 2, n $not)`},
		{"{n: {$not: {a: 1}}}", "$not wants operators or a /regex/"},
		{"{n: {$not: '/[/'}}", "(rule 2, n $not)"},
		{"{n: {$gt: 1, b: 2}}", "q.yml:3: mixes operators ($gt) with fields (b)"},
		{"{n: {$in: [{$gt: 1}]}}", "$in wants values, found operators"},
		{"{n: {$all: [{$gt: 1}]}}", "$all wants values or {$elemMatch: …}"},
		{"{n: {$exists: maybe}}", `$exists wants true or false, got "maybe" (rule 2, n $exists)`},
		{"{n: {$text: x}}", "unknown operator $text (rule 2, n $text)"},
		{"{n: {$and: [{a: 1}]}}", "unknown operator $and (rule 2, n $and)"},
		{"{n: {$in: x}}", `$in wants a list, got "x" (rule 2, n $in)`},
	}
	for _, c := range cases {
		text := "- when: {message_type: X}\n  do: [{tasks: [a]}]\n- when: " + c.when + "\n  do: [{tasks: [t]}]\n"
		_, err := ParseRules("q.yml", []byte(text), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.when, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.when, err)
		}
	}
	// The line is the operator's, in a block query too.
	_, err := ParseRules("q.yml", []byte("- when:\n    message_type: X\n    _msg.update.builds:\n      $elemMatch:\n        nvr: {$regexp: x}\n  do: [{tasks: [t]}]\n"), nil)
	if err == nil || err.Error() != "q.yml:5: unknown operator $regexp (rule 1, nvr $regexp)" {
		t.Errorf("nested unknown operator: %v", err)
	}
}

// A query part holding a ${var} is checked when a message comes: a bad
// value then makes that rule not match, and Explain says which rule and
// which operator.
func TestQueryErrorsAtEvaluation(t *testing.T) {
	vars := map[string]any{"divisor": 0, "pat": "[", "flags": "q", "notalist": "x", "types": "wat", "bigpat": "[" + strings.Repeat("p", 5<<20)}
	cases := []struct{ when, want string }{
		{"{_msg.build_id: {$mod: ['${divisor}', 1]}}", "t.yml:2: $mod: the divisor cannot be 0 (rule 1, _msg.build_id $mod)"},
		{"{name: {$regex: '${pat}'}}", `t.yml:2: regex "[": error parsing regexp: missing closing ]: ` + "`[`" + ` (rule 1, name $regex)`},
		{"{name: {$regex: x, $options: '${flags}'}}", "flag 'q' is not supported (use i, m, s or x) (rule 1, name $regex)"},
		{"{name: {$in: '${notalist}'}}", `$in wants a list, got "x" (rule 1, name $in)`},
		{"{name: {$type: '${types}'}}", `$type: unknown type "wat" (rule 1, name $type)`},
		{"{name: {$all: '${notalist}'}}", `$all wants a list, got "x" (rule 1, name $all)`},
		{"{name: {$all: ['${nope}']}}", "t.yml:2: unknown variable ${nope} (rule 1, name $all)"},
		{"{name: {$not: '${pat}'}}", `$not wants operators or a /regex/, got "[" (rule 1, name $not)`},
		{"{name: '${nope}'}", "t.yml:2: unknown variable ${nope} (rule 1, name)"},
		// A pattern from the message is quoted by its start only.
		{"{name: {$regex: '${bigpat}'}}", "bytes] (rule 1, name $regex)"},
	}
	build := loadCorpus(t, "koji-build-state-change__10.json")
	for _, c := range cases {
		r, err := ParseRules("t.yml", []byte("- when:\n    "+c.when+"\n  do: [{tasks: [x]}]\n- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [y]}]\n"), vars)
		if err != nil {
			t.Errorf("%s: %v", c.when, err)
			continue
		}
		ex, err := New(Options{Rules: r}).Explain(build)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Rules[0].Matched || !strings.HasPrefix(ex.Rules[0].Error, "t.yml:2: ") || !strings.HasSuffix(ex.Rules[0].Error, c.want) || len(ex.Rules[0].Error) > 1024 {
			t.Errorf("%s: error %q, want %q", c.when, ex.Rules[0].Error, c.want)
		}
		if !ex.Rules[1].Matched || jobSet(ex.Jobs) != "y/x86_64" {
			t.Errorf("%s: the next rule: %+v", c.when, ex.Rules[1])
		}
	}
}

// Message data that looks like a query or a placeholder stays data.
func TestQueryResolvedValuesStayData(t *testing.T) {
	data := map[string]any{
		"name":  map[string]any{"$gt": 0.0},
		"other": map[string]any{"$gt": 0.0},
		"ph":    phOpen + "secret" + phClose,
		"copy":  phOpen + "secret" + phClose,
		"n":     5.0,
	}
	vars := map[string]any{"secret": "s3"}
	for _, c := range []struct {
		when string
		want bool
	}{
		{"{other: '${name}'}", true}, // equal objects, not $gt 0
		{"{n: '${name}'}", false},
		{"{copy: '${ph}'}", true}, // compared as text, not resolved again
		{"{copy: s3}", false},
		{"{n: {$all: ['${n}']}}", true},
	} {
		got, checks, err := evalWhen(t, c.when, data, vars)
		if err != nil || got != c.want {
			t.Errorf("%s = %v %v, want %v (%v)", c.when, got, err, c.want, checks)
		}
	}
}

func TestQueryExplainShowsCollectedValues(t *testing.T) {
	d := corpusData(t, "bodhi-update-edit__4.json")
	_, checks, err := evalWhen(t, "{_msg.update.builds.nvr: {$regex: '^kernel-'}}", d, nil)
	if err != nil || len(checks) != 1 {
		t.Fatal(checks, err)
	}
	if got, want := checks[0].String(), `_msg.update.builds.nvr $regex "^kernel-" (got ["codec2-0.6-1.fc24","freedv-1.2-1.fc24"]): no`; got != want {
		t.Errorf("check = %s, want %s", got, want)
	}
}

// FuzzQuery compiles a query (JSON) and evaluates it against a document
// (JSON): no panic, one-line errors that name where, and the logical
// operators agree with each other.
func FuzzQuery(f *testing.F) {
	f.Add(`{"_msg.update.builds.nvr": {"$regex": "^a", "$options": "x"}}`, `{"_msg": {"update": {"builds": [{"nvr": "a-1-1"}, {"nvr": "b"}]}}}`)
	f.Add(`{"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}`, `{"a": [0, 3, [4]]}`)
	f.Add(`{"a": {"$all": [{"$elemMatch": {"b": null}}, 1]}}`, `{"a": [1, {"c": 2}]}`)
	f.Add(`{"a.b": {"$mod": [-3, -1], "$type": ["int", "double"]}}`, `{"a": [{"b": -4}, {"b": 2.5}]}`)
	f.Add(`{"$or": [{"a": {"$size": 2}}, {"a.0": {"$not": {"$in": [1, null]}}}]}`, `{"a": [null, 1]}`)
	f.Add(`{"a": {"$not": "/x  y/x"}}`, `{"a": "xy"}`)
	f.Fuzz(func(t *testing.T, qtext, dtext string) {
		var q, doc map[string]any
		if json.Unmarshal([]byte(qtext), &q) != nil || json.Unmarshal([]byte(dtext), &doc) != nil || q == nil || doc == nil {
			return
		}
		res := resolver{data: doc}
		ok, _, err := match(q, doc, res)
		if err != nil {
			var qe *queryError
			if !errors.As(err, &qe) || strings.Contains(err.Error(), "\n") || qe.where == "" {
				t.Fatalf("error %q does not say where, or is not one line", err)
			}
			return
		}
		nor, _, err := match(map[string]any{"$nor": []any{q}}, doc, res)
		if err != nil || nor == ok {
			t.Fatalf("$nor of a query that is %v: %v %v", ok, nor, err)
		}
		or, _, err := match(map[string]any{"$or": []any{q, map[string]any{"$nor": []any{q}}}}, doc, res)
		if err != nil || !or {
			t.Fatalf("q or not q: %v %v", or, err)
		}
		and, _, err := match(map[string]any{"$and": []any{q, q}}, doc, res)
		if err != nil || and != ok {
			t.Fatalf("q and q = %v, q = %v (%v)", and, ok, err)
		}
		// Each field's condition under $not inverts it, when it is operators.
		for k, cond := range q {
			m, isMap := cond.(map[string]any)
			if strings.HasPrefix(k, "$") || !isMap || len(m) == 0 || !hasOperatorKey(m) {
				continue
			}
			one, _, err := match(map[string]any{k: cond}, doc, res)
			if err != nil {
				t.Fatalf("%s alone: %v", k, err)
			}
			not, _, err := match(map[string]any{k: map[string]any{"$not": cond}}, doc, res)
			if err != nil || not == one {
				t.Fatalf("%s $not: %v, plain %v (%v)", k, not, one, err)
			}
		}
	})
}
