package directives

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// JUnit XML as test runners write it: a <testsuites> root or a single
// <testsuite>, suites nested to any depth.
type junitSuite struct {
	Name   string       `xml:"name,attr"`
	Suites []junitSuite `xml:"testsuite"`
	Cases  []junitCase  `xml:"testcase"`
}

type junitCase struct {
	Name      string     `xml:"name,attr"`
	ClassName string     `xml:"classname,attr"`
	Failure   *junitNote `xml:"failure"`
	Error     *junitNote `xml:"error"`
	Skipped   *junitNote `xml:"skipped"`
}

type junitNote struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// TestCase is one test case read from JUnit XML.
type TestCase struct {
	Name    string
	Outcome contract.Outcome
	Message string
}

// ParseJUnit reads JUnit XML: failures and errors are FAILED, skipped tests
// INFO, the rest PASSED.
func ParseJUnit(data []byte) ([]TestCase, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	// Never fetch or expand anything the document points to.
	dec.Strict = true
	dec.Entity = map[string]string{}
	var root junitSuite
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no <testsuites> or <testsuite> element")
		}
		if err != nil {
			return nil, fmt.Errorf("xunit XML: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "testsuites" && se.Name.Local != "testsuite" {
			return nil, fmt.Errorf("xunit XML: root element is <%s>, want <testsuites> or <testsuite>", se.Name.Local)
		}
		if err := dec.DecodeElement(&root, &se); err != nil {
			return nil, fmt.Errorf("xunit XML: %w", err)
		}
		break
	}
	var out []TestCase
	var walk func(s junitSuite, depth int) error
	walk = func(s junitSuite, depth int) error {
		if depth > 50 {
			return errors.New("xunit XML: test suites nested too deep")
		}
		for _, c := range s.Cases {
			tc := TestCase{Name: c.Name, Outcome: contract.Passed}
			if tc.Name == "" {
				tc.Name = c.ClassName
			}
			switch {
			case c.Failure != nil:
				tc.Outcome, tc.Message = contract.Failed, firstLine(c.Failure)
			case c.Error != nil:
				tc.Outcome, tc.Message = contract.Failed, firstLine(c.Error)
			case c.Skipped != nil:
				tc.Outcome, tc.Message = contract.Info, firstLine(c.Skipped)
			}
			out = append(out, tc)
		}
		for _, sub := range s.Suites {
			if err := walk(sub, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func firstLine(n *junitNote) string {
	s := strings.TrimSpace(n.Message)
	if s == "" {
		s = strings.TrimSpace(n.Text)
	}
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// xunit turns a JUnit XML file into results (reference §2.4): aggregation
// allpass (default) gives one result for the whole file, none one result
// per test case named checkname.testname.
func xunit(ctx context.Context, params map[string]any, env *Env) (any, error) {
	get := func(k string) string { s, _ := params[k].(string); return s }
	item, typ, check, file := get("item"), get("type"), get("checkname"), get("file")
	if item == "" || typ == "" || check == "" || file == "" {
		return nil, errors.New("item, type, checkname and file are required")
	}
	agg := get("aggregation")
	if agg == "" {
		agg = "allpass"
	}
	if agg != "allpass" && agg != "none" {
		return nil, fmt.Errorf("aggregation %q: want allpass or none", agg)
	}
	data, err := readRunFile(env, file)
	if err != nil {
		return nil, err
	}
	cases, err := ParseJUnit(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	artifact := ""
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.TaskDir, file)
	}
	if real, err := resolveInside(path, file, env.ArtifactsDir); err == nil {
		if root, err := filepath.EvalSymlinks(env.ArtifactsDir); err == nil {
			artifact, _ = filepath.Rel(root, real)
		}
	}
	arch, _ := env.Vars["arch"].(string)
	ns, _ := env.Vars["namespace"].(string)
	mk := func(name string, o contract.Outcome, note string) contract.Result {
		r := contract.Result{Item: item, Type: typ, CheckName: results.Namespaced(ns, name), Outcome: o, Note: note, Artifact: artifact}
		if arch != "" {
			r.Arch = contract.OneArch(arch)
		}
		return r
	}
	var rs []contract.Result
	if agg == "none" {
		for _, c := range cases {
			rs = append(rs, mk(check+"."+c.Name, c.Outcome, c.Message))
		}
	} else {
		outcome := contract.Passed
		var all []contract.Outcome
		for _, c := range cases {
			all = append(all, c.Outcome)
			if c.Outcome == contract.Failed {
				outcome = contract.Failed
			}
		}
		note := contract.Summary(all)
		if len(cases) == 0 {
			note = "no test cases"
		}
		rs = append(rs, mk(check, outcome, note))
	}
	return ResultYAML(rs)
}

func init() {
	Register("xunit", Func(xunit))
}
