// Package kcidb reads KCIDB I/O submissions: the JSON documents in which
// CI systems report checkouts, builds and tests to a common store (the
// format of kernelci/kcidb-io). Parse checks a document against the schema
// of the version it names, with an error naming the JSON path of the first
// bad field, and upgrades it to the latest version this package knows.
//
// The schema documents in schema/ are KCIDB's own, exported from kcidb-io
// as its README shows (schema/README.md). This package imports only the
// JSON-schema validator and the standard library.
package kcidb

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Version is a KCIDB I/O schema version. Minor versions of one major are
// backward compatible; a new major changes or removes fields.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Latest is the version Parse upgrades every document to.
var Latest = Version{5, 3}

// versions are those with a schema in schema/, oldest first.
var versions = []Version{{4, 0}, {4, 1}, {4, 2}, {4, 3}, {4, 4}, {4, 5}, {5, 0}, {5, 1}, {5, 2}, {5, 3}}

// Versions lists the versions Parse accepts, oldest first.
func Versions() []Version { return append([]Version(nil), versions...) }

//go:embed schema/*.json
var schemaFiles embed.FS

var (
	compileOnce sync.Once
	schemas     map[Version]*jsonschema.Schema
	compileErr  error
)

func compiled() (map[Version]*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		schemas = map[Version]*jsonschema.Schema{}
		for _, v := range versions {
			name := "schema/v" + v.String() + ".json"
			raw, err := schemaFiles.ReadFile(name)
			if err != nil {
				compileErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				compileErr = fmt.Errorf("%s: %w", name, err)
				return
			}
			c := jsonschema.NewCompiler()
			// KCIDB's schemas are draft 7 without a $schema, and ask for
			// their uri and date-time formats to be checked.
			c.DefaultDraft(jsonschema.Draft7)
			c.AssertFormat()
			url := "https://kcidb.invalid/" + name
			if err := c.AddResource(url, doc); err != nil {
				compileErr = fmt.Errorf("%s: %w", name, err)
				return
			}
			sch, err := c.Compile(url)
			if err != nil {
				compileErr = fmt.Errorf("%s: %w", name, err)
				return
			}
			schemas[v] = sch
		}
	})
	return schemas, compileErr
}

// Error is a document that is not valid KCIDB: Path is the JSON path of
// the first bad field ("$" for the whole document).
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// Submission is a valid document, upgraded to Latest.
type Submission struct {
	// Version is the version the document named; Upgraded tells whether
	// it was upgraded to Latest.
	Version  Version
	Upgraded bool

	Checkouts []Checkout `json:"checkouts"`
	Builds    []Build    `json:"builds"`
	Tests     []Test     `json:"tests"`
	// Issues and Incidents are checked but not kept: only how many.
	Issues    []json.RawMessage `json:"issues"`
	Incidents []json.RawMessage `json:"incidents"`
}

// Checkout is the source code that was built and tested.
type Checkout struct {
	ID                  string   `json:"id"`
	Origin              string   `json:"origin"`
	TreeName            string   `json:"tree_name"`
	GitRepositoryURL    string   `json:"git_repository_url"`
	GitRepositoryBranch string   `json:"git_repository_branch"`
	GitCommitHash       string   `json:"git_commit_hash"`
	GitCommitName       string   `json:"git_commit_name"`
	GitCommitTags       []string `json:"git_commit_tags"`
	PatchsetHash        string   `json:"patchset_hash"`
	StartTime           string   `json:"start_time"`
	Comment             string   `json:"comment"`
	LogURL              string   `json:"log_url"`
	Valid               *bool    `json:"valid"`
}

// Build is one build of a checkout.
type Build struct {
	ID           string   `json:"id"`
	Origin       string   `json:"origin"`
	CheckoutID   string   `json:"checkout_id"`
	Architecture string   `json:"architecture"`
	ConfigName   string   `json:"config_name"`
	ConfigURL    string   `json:"config_url"`
	Compiler     string   `json:"compiler"`
	Comment      string   `json:"comment"`
	StartTime    string   `json:"start_time"`
	Duration     *float64 `json:"duration"`
	LogURL       string   `json:"log_url"`
	// Status is one of FAIL, ERROR, MISS, PASS, DONE, SKIP, or empty.
	Status string `json:"status"`
}

// Test is one test run on a build.
type Test struct {
	ID          string `json:"id"`
	Origin      string `json:"origin"`
	BuildID     string `json:"build_id"`
	Path        string `json:"path"`
	HasPath     bool   `json:"-"`
	Status      string `json:"status"`
	Comment     string `json:"comment"`
	LogURL      string `json:"log_url"`
	StartTime   string `json:"start_time"`
	Environment struct {
		Comment    string   `json:"comment"`
		Compatible []string `json:"compatible"`
	} `json:"environment"`
	Duration *float64 `json:"duration"`
	Number   *struct {
		Value  float64 `json:"value"`
		Unit   string  `json:"unit"`
		Prefix string  `json:"prefix"`
	} `json:"number"`
	// Waived is v4's "waived", which v5 turned into an issue and incident;
	// kept here so that it is not lost.
	Waived *bool `json:"-"`
}

// MaxBytes bounds a document Parse reads.
const MaxBytes = 64 << 20

// Parse reads a KCIDB I/O document, checks it against the schema of its
// version and upgrades it to Latest.
func Parse(raw []byte) (Submission, error) {
	var sub Submission
	if len(raw) > MaxBytes {
		return sub, &Error{Path: "$", Msg: fmt.Sprintf("the document is %d bytes; at most %d", len(raw), MaxBytes)}
	}
	schemas, err := compiled()
	if err != nil {
		return sub, fmt.Errorf("kcidb schemas: %w", err)
	}
	doc, err := decode(raw)
	if err != nil {
		return sub, err
	}
	v, err := version(doc)
	if err != nil {
		return sub, err
	}
	sub.Version = v
	if err := check(schemas[v], doc, ""); err != nil {
		return sub, err
	}
	obj := doc.(map[string]any)
	waived := map[int]bool{}
	if v.Major == 4 {
		if waived, err = inherit4(obj); err != nil {
			return sub, err
		}
	}
	if v != Latest {
		sub.Upgraded = true
		obj["version"] = map[string]any{"major": json.Number(strconv.Itoa(Latest.Major)), "minor": json.Number(strconv.Itoa(Latest.Minor))}
		if v.Major != Latest.Major {
			// A new major changed fields: the upgraded document must be
			// valid as one of the new version.
			if err := check(schemas[Latest], obj, fmt.Sprintf(" (after upgrading %s to %s)", v, Latest)); err != nil {
				return sub, err
			}
		}
	}
	// The schema has checked every type: this cannot fail on a valid one.
	norm, err := json.Marshal(obj)
	if err != nil {
		return sub, fmt.Errorf("kcidb: re-encode: %w", err)
	}
	if err := json.Unmarshal(norm, &sub); err != nil {
		return sub, fmt.Errorf("kcidb: read the checked document: %w", err)
	}
	sub.Version = v
	tests, _ := obj["tests"].([]any)
	for i := range sub.Tests {
		if t, ok := tests[i].(map[string]any); ok {
			_, sub.Tests[i].HasPath = t["path"]
		}
		if w, ok := waived[i]; ok {
			sub.Tests[i].Waived = &w
		}
	}
	return sub, nil
}

// decode reads one JSON value, keeping numbers as written.
func decode(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &Error{Path: "$", Msg: "the document is empty; send a KCIDB I/O JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &Error{Path: "$", Msg: "not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err == nil {
		return nil, &Error{Path: "$", Msg: "more than one JSON value"}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, &Error{Path: "$", Msg: "the document must be a JSON object"}
	}
	return doc, nil
}

// version reads the document's version, whose schema checks the rest.
func version(doc any) (Version, error) {
	supported := fmt.Sprintf("supported: %s to %s", versions[0], versions[len(versions)-1])
	vo, ok := doc.(map[string]any)["version"]
	if !ok {
		return Version{}, &Error{Path: "$", Msg: `missing property 'version' ({"major": 5, "minor": 3}); ` + supported}
	}
	vm, ok := vo.(map[string]any)
	if !ok {
		return Version{}, &Error{Path: "$.version", Msg: `want an object like {"major": 5, "minor": 3}`}
	}
	num := func(key string) (int, bool, error) {
		x, ok := vm[key]
		if !ok {
			return 0, false, nil
		}
		n, isNum := x.(json.Number)
		i, err := strconv.Atoi(string(n))
		if !isNum || err != nil {
			return 0, true, &Error{Path: "$.version." + key, Msg: "want a whole number"}
		}
		return i, true, nil
	}
	major, set, err := num("major")
	if err != nil {
		return Version{}, err
	}
	if !set {
		return Version{}, &Error{Path: "$.version", Msg: "missing property 'major'"}
	}
	minor, set, err := num("minor")
	if err != nil {
		return Version{}, err
	}
	last := -1
	for _, v := range versions {
		if v.Major == major {
			last = v.Minor
		}
	}
	if last < 0 {
		return Version{}, &Error{Path: "$.version.major", Msg: fmt.Sprintf("version %d is not supported; %s", major, supported)}
	}
	if !set {
		// KCIDB's minor is optional: the newest of the major then.
		minor = last
	}
	if minor < 0 || minor > last {
		return Version{}, &Error{Path: "$.version.minor", Msg: fmt.Sprintf("version %d.%d is not supported; %s", major, minor, supported)}
	}
	return Version{major, minor}, nil
}

var printer = message.NewPrinter(language.English)

// check validates doc against sch; the error names the first bad field.
func check(sch *jsonschema.Schema, doc any, context string) error {
	err := sch.Validate(doc)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &Error{Path: "$", Msg: err.Error() + context}
	}
	var leaves []*jsonschema.ValidationError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, e)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(verr)
	// The first in document order: lists by index, objects by key.
	sort.SliceStable(leaves, func(i, j int) bool { return before(leaves[i].InstanceLocation, leaves[j].InstanceLocation) })
	first := leaves[0]
	return &Error{Path: jsonPath(first.InstanceLocation), Msg: first.ErrorKind.LocalizedString(printer) + context}
}

func before(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		x, errX := strconv.Atoi(a[i])
		y, errY := strconv.Atoi(b[i])
		if errX == nil && errY == nil {
			return x < y
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// jsonPath writes a location as $.tests[3].status. Every token that is a
// number indexes a list: KCIDB's field names never are.
func jsonPath(loc []string) string {
	var b strings.Builder
	b.WriteString("$")
	for _, tok := range loc {
		switch {
		case isIndex(tok):
			b.WriteString("[" + tok + "]")
		case identRE.MatchString(tok):
			b.WriteString("." + tok)
		default:
			q, _ := json.Marshal(tok)
			b.WriteString("[" + string(q) + "]")
		}
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// v5TestPath is v5's rule for test paths, stricter than v4's.
var v5TestPath = regexp.MustCompile(`^([a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*)?$`)

// inherit4 upgrades a valid v4 document to v5 as KCIDB does: checkouts
// lose "contacts" and need an https repository URL; a build's "valid"
// becomes its status; a test path must be one v5 can read; issues lose
// build_valid and test_status; and strings may not hold NUL. A test's
// "waived", an issue and an incident in v5, is returned by test index.
func inherit4(doc map[string]any) (map[int]bool, error) {
	list := func(key string) []any { l, _ := doc[key].([]any); return l }
	for i, c := range list("checkouts") {
		co := c.(map[string]any)
		delete(co, "contacts")
		if u, ok := co["git_repository_url"].(string); ok && !strings.HasPrefix(u, "https://") {
			return nil, &Error{Path: fmt.Sprintf("$.checkouts[%d].git_repository_url", i),
				Msg: fmt.Sprintf("%q cannot be upgraded to version %s, which wants an https:// URL of the repository", u, Latest)}
		}
	}
	for _, b := range list("builds") {
		bo := b.(map[string]any)
		if v, ok := bo["valid"].(bool); ok {
			bo["status"] = map[bool]string{false: "FAIL", true: "PASS"}[v]
		}
		delete(bo, "valid")
	}
	waived := map[int]bool{}
	for i, t := range list("tests") {
		to := t.(map[string]any)
		if p, ok := to["path"].(string); ok && !v5TestPath.MatchString(p) {
			return nil, &Error{Path: fmt.Sprintf("$.tests[%d].path", i),
				Msg: fmt.Sprintf("%q is ambiguous in version %s (empty parts or other characters than letters, digits, '_', '-' between dots)", p, Latest)}
		}
		if w, ok := to["waived"].(bool); ok {
			waived[i] = w
		}
		delete(to, "waived")
	}
	for _, is := range list("issues") {
		io := is.(map[string]any)
		delete(io, "build_valid")
		delete(io, "test_status")
	}
	return waived, nil
}
