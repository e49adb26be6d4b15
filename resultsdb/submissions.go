package resultsdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/taskotron-go/taskotron/kcidb"
)

// KCIDB submissions: a CI system POSTs a KCIDB I/O document (checkouts,
// builds, tests) to /api/v2.0/submissions with its origin's token; every
// build and test becomes a result, all in one transaction. README's
// "Submissions in KCIDB's format" has the mapping; kcidbResults is it.

// defaultMaxSubmissionBytes caps a submission body when
// Options.MaxSubmissionBytes is 0.
const defaultMaxSubmissionBytes = 32 << 20

// Testcase names of the results that are not a test's.
const (
	kcidbBuildTestcase = "kcidb.build"
	// kcidbRootTestcase is a test whose path is missing or empty (the
	// root of KCIDB's test tree).
	kcidbRootTestcase = "kcidb.test"
	kcidbItemType     = "kcidb_build"
)

type submissionJSON struct {
	Origin     string  `json:"origin"`
	Version    string  `json:"version"`
	UpgradedTo *string `json:"upgraded_to"`
	Checkouts  int     `json:"checkouts"`
	Builds     int     `json:"builds"`
	Tests      int     `json:"tests"`
	// Issues and incidents are checked, not stored.
	Ignored struct {
		Issues    int `json:"issues"`
		Incidents int `json:"incidents"`
	} `json:"ignored"`
	Results []int64 `json:"results"`
	// Href lists the submitted results through the API.
	Href string `json:"href"`
}

func (s *server) submissionsInfo(w http.ResponseWriter, r *http.Request) error {
	var vs []string
	for _, v := range kcidb.Versions() {
		vs = append(vs, v.String())
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message": "POST a KCIDB I/O JSON document here with your origin's token (Authorization: Bearer …); " +
			"each build and test becomes a result, all or none.",
		"versions": vs,
		"latest":   kcidb.Latest.String(),
	})
	return nil
}

func (s *server) postSubmission(w http.ResponseWriter, r *http.Request) error {
	if !isJSON(r.Header.Get("Content-Type")) {
		return &statusError{code: http.StatusUnsupportedMediaType, msg: "Send the KCIDB document with Content-Type: application/json"}
	}
	limit := s.opts.MaxSubmissionBytes
	if limit <= 0 {
		limit = defaultMaxSubmissionBytes
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &statusError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("Submission larger than %d bytes; split it", limit)}
		}
		return badf("Malformed Request: reading the body: %v", err)
	}
	sub, err := kcidb.Parse(raw)
	var kerr *kcidb.Error
	switch {
	case errors.As(err, &kerr):
		where := "KCIDB"
		if sub.Version.Major > 0 {
			where += " " + sub.Version.String()
		}
		return badf("Malformed Request: %s: %s", where, kerr.Error())
	case err != nil:
		return err
	}
	origin := writerOrigin(r)
	if err := s.checkSubmissionOrigins(r, sub); err != nil {
		return err
	}
	batch, err := kcidbResults(sub, origin, s.outcomes)
	if err != nil {
		return err
	}
	for i := range batch {
		batch[i].Event = s.opts.Events
	}
	created, err := s.store.CreateResults(r.Context(), batch)
	if err != nil {
		return err
	}
	out := submissionJSON{Origin: origin, Version: sub.Version.String(), Checkouts: len(sub.Checkouts), Builds: len(sub.Builds),
		Tests: len(sub.Tests), Results: make([]int64, len(created))}
	if sub.Upgraded {
		latest := kcidb.Latest.String()
		out.UpgradedTo = &latest
	}
	out.Ignored.Issues, out.Ignored.Incidents = len(sub.Issues), len(sub.Incidents)
	for i, res := range created {
		out.Results[i] = res.ID
	}
	out.Href = s.base(r) + APIPrefix + "/results?origin=" + origin
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// checkSubmissionOrigins refuses objects of another origin than the
// token's: each object's "origin" and the origin its own id starts with.
// References (a test's build_id, a build's checkout_id) may name another
// origin's objects, as in KCIDB, where one CI system tests another's builds.
func (s *server) checkSubmissionOrigins(r *http.Request, sub kcidb.Submission) error {
	check := func(path, origin, id string) error {
		if err := s.checkOrigin(r, origin); err != nil {
			var st *statusError
			if errors.As(err, &st) {
				// The path first: it says which object.
				return &statusError{code: st.code, msg: "Forbidden: " + path + ".origin: " + strings.TrimPrefix(st.msg, "Forbidden: ")}
			}
			return err
		}
		if idOrigin, _, _ := strings.Cut(id, ":"); idOrigin != origin {
			return &statusError{code: http.StatusForbidden, msg: fmt.Sprintf("Forbidden: %s.id %s does not start with its origin %s followed by ':'",
				path, pyRepr(prefix(id)), pyRepr(origin))}
		}
		return nil
	}
	for i, c := range sub.Checkouts {
		if err := check(fmt.Sprintf("$.checkouts[%d]", i), c.Origin, c.ID); err != nil {
			return err
		}
	}
	for i, b := range sub.Builds {
		if err := check(fmt.Sprintf("$.builds[%d]", i), b.Origin, b.ID); err != nil {
			return err
		}
	}
	for i, t := range sub.Tests {
		if err := check(fmt.Sprintf("$.tests[%d]", i), t.Origin, t.ID); err != nil {
			return err
		}
	}
	for _, k := range []struct {
		kind string
		list []json.RawMessage
	}{{"issues", sub.Issues}, {"incidents", sub.Incidents}} {
		kind := k.kind
		for i, raw := range k.list {
			var o struct{ ID, Origin string }
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("read %s[%d]: %w", kind, i, err)
			}
			if err := check(fmt.Sprintf("$.%s[%d]", kind, i), o.Origin, o.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// kcidbOutcome maps a KCIDB status to a ResultsDB outcome. ERROR (the
// test's own code failed) and MISS (the harness failed) say nothing of the
// tested code, as CRASHED and ABORTED; a server without those outcomes
// gets NEEDS_INSPECTION. No status is no verdict.
func kcidbOutcome(status string, outcomes []string) string {
	var o string
	switch status {
	case "PASS":
		o = "PASSED"
	case "FAIL":
		o = "FAILED"
	case "ERROR":
		o = "CRASHED"
	case "MISS":
		o = "ABORTED"
	case "DONE", "SKIP":
		o = "INFO"
	default:
		o = "NEEDS_INSPECTION"
	}
	if !contains(outcomes, o) {
		o = "NEEDS_INSPECTION"
	}
	return o
}

// kcidbResults turns a submission into results of origin: one per build
// (testcase kcidb.build) and one per test (the test's path), each with
// its build and checkout in its data when the submission holds them.
func kcidbResults(sub kcidb.Submission, origin string, outcomes []string) ([]NewResult, error) {
	builds := map[string]kcidb.Build{}
	for _, b := range sub.Builds {
		builds[b.ID] = b
	}
	checkouts := map[string]kcidb.Checkout{}
	for _, c := range sub.Checkouts {
		checkouts[c.ID] = c
	}
	var out []NewResult
	add := func(path string, in NewResult) error {
		in.Origin = origin
		if err := checkName(path+" as testcase name", in.Testcase.Name); err != nil {
			return err
		}
		for _, p := range in.Data {
			if err := checkName(path+" data key", p.Key); err != nil {
				return err
			}
		}
		if err := checkResultText(in); err != nil {
			return badf("%s: %s", path, strings.TrimPrefix(err.Error(), "Malformed Request: "))
		}
		out = append(out, in)
		return nil
	}
	// buildData is what a result says of its build and checkout.
	buildData := func(buildID string) ([]DataPair, []GroupUpdate) {
		d := []DataPair{{"item", buildID}, {"type", kcidbItemType}}
		g := GroupUpdate{UUID: buildID}
		b, ok := builds[buildID]
		if !ok {
			return d, []GroupUpdate{g}
		}
		desc := "KCIDB build " + buildID
		g.Description, g.SetDescription = &desc, true
		if b.LogURL != "" {
			g.RefURL, g.SetRefURL = &b.LogURL, true
		}
		d = appendSet(d, "arch", b.Architecture, "checkout_id", b.CheckoutID, "config_name", b.ConfigName,
			"config_url", b.ConfigURL, "compiler", b.Compiler)
		if c, ok := checkouts[b.CheckoutID]; ok {
			d = appendSet(d, "tree_name", c.TreeName, "git_repository_url", c.GitRepositoryURL,
				"git_repository_branch", c.GitRepositoryBranch, "git_commit_hash", c.GitCommitHash,
				"git_commit_name", c.GitCommitName, "patchset_hash", c.PatchsetHash)
		}
		return d, []GroupUpdate{g}
	}
	for i, b := range sub.Builds {
		d, groups := buildData(b.ID)
		d = appendSet(d, "kcidb_id", b.ID, "kcidb_status", b.Status, "start_time", b.StartTime)
		if b.Duration != nil {
			d = append(d, DataPair{"duration", strconv.FormatFloat(*b.Duration, 'g', -1, 64)})
		}
		in := NewResult{Outcome: kcidbOutcome(b.Status, outcomes), Testcase: TestcaseUpdate{Name: kcidbBuildTestcase},
			Groups: groups, Data: d, Note: optional(b.Comment), RefURL: optional(b.LogURL)}
		if err := add(fmt.Sprintf("$.builds[%d]", i), in); err != nil {
			return nil, err
		}
	}
	for i, t := range sub.Tests {
		name := t.Path
		if name == "" {
			name = kcidbRootTestcase
		}
		d, groups := buildData(t.BuildID)
		d = appendSet(d, "kcidb_id", t.ID, "kcidb_status", t.Status, "start_time", t.StartTime, "environment", t.Environment.Comment)
		for _, c := range t.Environment.Compatible {
			d = append(d, DataPair{"compatible", c})
		}
		if t.Duration != nil {
			d = append(d, DataPair{"duration", strconv.FormatFloat(*t.Duration, 'g', -1, 64)})
		}
		if t.Number != nil {
			d = append(d, DataPair{"number", strconv.FormatFloat(t.Number.Value, 'g', -1, 64)})
			d = appendSet(d, "number_unit", t.Number.Unit, "number_prefix", t.Number.Prefix)
		}
		if t.Waived != nil {
			d = append(d, DataPair{"waived", map[bool]string{true: "True", false: "False"}[*t.Waived]})
		}
		in := NewResult{Outcome: kcidbOutcome(t.Status, outcomes), Testcase: TestcaseUpdate{Name: name},
			Groups: groups, Data: d, Note: optional(t.Comment), RefURL: optional(t.LogURL)}
		if err := add(fmt.Sprintf("$.tests[%d]", i), in); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendSet appends the key, value pairs whose value is not empty.
func appendSet(d []DataPair, kv ...string) []DataPair {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			d = append(d, DataPair{kv[i], kv[i+1]})
		}
	}
	return d
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
