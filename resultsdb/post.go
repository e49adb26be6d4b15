package resultsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/google/uuid"
)

// maxNameBytes bounds names that are unique keys (testcase names, group
// uuids, data keys): an index entry must stay small.
const maxNameBytes = 1000

func checkName(what, s string) error {
	if len(s) > maxNameBytes {
		return badf("Malformed Request: %s is %d bytes long; at most %d", what, len(s), maxNameBytes)
	}
	return nil
}

// decodeBody reads a JSON object from a request body of at most max bytes.
// As ResultsDB 2.2 (Flask's get_json), the body must be declared JSON: a
// form or text/plain body is refused before it is read, which also keeps
// a web page from posting results across sites without a CORS preflight.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64) (map[string]any, error) {
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, &statusError{code: http.StatusUnsupportedMediaType,
			msg: "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &statusError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("Request body larger than %d bytes", max)}
		}
		return nil, badf("Malformed Request: reading the body: %v", err)
	}
	return parseObject(raw)
}

// isJSON is Werkzeug's Request.is_json: application/json or
// application/*+json, parameters aside.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// Werkzeug reads the type up to the first ';' whatever follows.
		mt = strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// parseObject parses a JSON object, keeping numbers as written.
func parseObject(raw []byte) (map[string]any, error) {
	v, err := parseJSON(raw, "a JSON object")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badf("Malformed Request: the body must be a JSON object, not %s", jsonType(v))
	}
	return m, nil
}

// parseJSON parses one JSON value (want says what, for an empty body),
// keeping numbers as written.
func parseJSON(raw []byte, want string) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badf("Malformed Request: the body is empty; send %s", want)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badf("Malformed Request: the body is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, badf("Malformed Request: the body holds more than one JSON value")
	}
	return v, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// optString reads an optional string field: absent (set false), null, or
// a string; any other type is a client error.
func optString(m map[string]any, key, where string) (val *string, set bool, err error) {
	v, ok := m[key]
	if !ok {
		return nil, false, nil
	}
	switch x := v.(type) {
	case nil:
		return nil, true, nil
	case string:
		return &x, true, nil
	}
	return nil, true, badf("Malformed Request: %s must be a string or null, not %s", where, jsonType(v))
}

// parseResultPost checks a POST /results body (reference §6.3) in
// ResultsDB 2.2's order, which decides the message a client reads: first
// each field's presence and type (its request parser, in the order
// outcome, testcase, groups, note, data, ref_url), then the outcome's
// value, colons in data keys, and the testcase name; last what no store
// can hold.
func parseResultPost(m map[string]any, outcomes []string) (NewResult, error) {
	var in NewResult
	ov, ok := m["outcome"]
	if !ok || ov == nil {
		return in, badf("Malformed Request: outcome: missing required parameter in the JSON body")
	}
	o, ok := ov.(string)
	if !ok {
		return in, badf("Malformed Request: outcome must be a string, not %s", jsonType(ov))
	}

	tv, ok := m["testcase"]
	if !ok || tv == nil {
		return in, badf("Malformed Request: testcase: missing required parameter in the JSON body")
	}
	var tcObject map[string]any
	switch t := tv.(type) {
	case string:
		in.Testcase.Name = t
	case map[string]any:
		tcObject = t
		if nv, present := t["name"]; present && nv != nil {
			name, ok := nv.(string)
			if !ok {
				return in, badf("Malformed Request: testcase.name must be a string, not %s", jsonType(nv))
			}
			in.Testcase.Name = name
		}
		var err error
		if in.Testcase.RefURL, in.Testcase.SetRefURL, err = optString(t, "ref_url", "testcase.ref_url"); err != nil {
			return in, err
		}
	default:
		return in, badf("Malformed Request: testcase must be a name or an object with a name, not %s", jsonType(tv))
	}

	if gv, ok := m["groups"]; ok && gv != nil {
		list, ok := gv.([]any)
		if !ok {
			return in, badf("Malformed Request: groups must be a list, not %s", jsonType(gv))
		}
		for i, item := range list {
			where := fmt.Sprintf("groups[%d]", i)
			switch g := item.(type) {
			case string:
				if g == "" {
					return in, badf("Malformed Request: %s: empty uuid", where)
				}
				in.Groups = append(in.Groups, GroupUpdate{UUID: g})
			case map[string]any:
				var gu GroupUpdate
				id, set, err := optString(g, "uuid", where+".uuid")
				if err != nil {
					return in, err
				}
				if !set || id == nil || *id == "" {
					gu.UUID = newUUID()
				} else {
					gu.UUID = *id
				}
				if gu.Description, gu.SetDescription, err = optString(g, "description", where+".description"); err != nil {
					return in, err
				}
				if gu.RefURL, gu.SetRefURL, err = optString(g, "ref_url", where+".ref_url"); err != nil {
					return in, err
				}
				in.Groups = append(in.Groups, gu)
			default:
				return in, badf("Malformed Request: %s must be a uuid string or an object, not %s", where, jsonType(item))
			}
		}
	}

	var err error
	if in.Note, _, err = optString(m, "note", "note"); err != nil {
		return in, err
	}
	var data map[string]any
	if dv, ok := m["data"]; ok && dv != nil {
		if data, ok = dv.(map[string]any); !ok {
			return in, badf("Malformed Request: data must be an object, not %s", jsonType(dv))
		}
	}
	if in.RefURL, _, err = optString(m, "ref_url", "ref_url"); err != nil {
		return in, err
	}
	if sv, ok := m["submit_time"]; ok && sv != nil {
		if in.SubmitTime, err = parseSubmitTime(sv); err != nil {
			return in, err
		}
	}

	o = strings.ToUpper(strings.TrimSpace(o))
	if o == "" {
		return in, badf("Malformed Request: outcome must not be empty")
	}
	if !contains(outcomes, o) {
		return in, badf("outcome must be one of %s", pyTuple(outcomes))
	}
	in.Outcome = o

	keys := make([]string, 0, len(data))
	var colons []string
	for k := range data {
		keys = append(keys, k)
		if strings.Contains(k, ":") {
			colons = append(colons, k)
		}
	}
	sort.Strings(keys)
	if len(colons) > 0 {
		sort.Strings(colons)
		return in, badf("Colon not allowed in key name: %s", pyList(colons))
	}

	if in.Testcase.Name == "" {
		if tcObject != nil {
			return in, badf("testcase.name not set")
		}
		return in, badf("testcase name not set")
	}

	if err := checkName("testcase name", in.Testcase.Name); err != nil {
		return in, err
	}
	for i, g := range in.Groups {
		if err := checkName(fmt.Sprintf("groups[%d].uuid", i), g.UUID); err != nil {
			return in, err
		}
	}
	for _, k := range keys {
		if err := checkName("data key "+pyRepr(prefix(k)), k); err != nil {
			return in, err
		}
		if list, ok := data[k].([]any); ok {
			for _, v := range list {
				in.Data = append(in.Data, DataPair{Key: k, Value: dataString(v)})
			}
			continue
		}
		in.Data = append(in.Data, DataPair{Key: k, Value: dataString(data[k])})
	}
	return in, checkResultText(in)
}

// noNUL refuses a string with a NUL character, which PostgreSQL cannot
// store in text; SQLite refuses it too, so both stores hold the same.
func noNUL(where, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return badf("Malformed Request: %s: the NUL character (\\u0000) cannot be stored", where)
	}
	return nil
}

func noNULPtr(where string, s *string) error {
	if s == nil {
		return nil
	}
	return noNUL(where, *s)
}

// checkResultText refuses a result with text no store can hold.
func checkResultText(in NewResult) error {
	errs := []error{
		noNUL("testcase name", in.Testcase.Name),
		noNULPtr("testcase.ref_url", in.Testcase.RefURL),
		noNULPtr("note", in.Note),
		noNULPtr("ref_url", in.RefURL),
	}
	for i, g := range in.Groups {
		where := fmt.Sprintf("groups[%d]", i)
		errs = append(errs, noNUL(where+".uuid", g.UUID), noNULPtr(where+".description", g.Description), noNULPtr(where+".ref_url", g.RefURL))
	}
	for _, p := range in.Data {
		errs = append(errs, noNUL("data key "+pyRepr(prefix(p.Key)), p.Key), noNUL("data["+pyRepr(prefix(p.Key))+"]", p.Value))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// dataString stores a data value as text, as ResultsDB's Python did:
// strings as they are, True/False/None, numbers as written.
func dataString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// newUUID makes a time-based uuid (uuid1) as ResultsDB does, or a random
// one when the clock sequence cannot be read.
func newUUID() string {
	if u, err := uuid.NewUUID(); err == nil {
		return u.String()
	}
	return uuid.NewString()
}
