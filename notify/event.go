package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultOrigin is the origin of results whose event names none: those of
// ResultsDB before origins, all of them Taskotron's.
const DefaultOrigin = "taskotron"

// MaxEvent caps a message body: a result is a few KiB.
const MaxEvent = 1 << 20

// maxField caps one field kept of a result (a note, an item): what a
// message and a digest line can show.
const maxField = 4096

// Result is what a notification says about one result, read from a
// resultsdb.result.new message.
type Result struct {
	ID       int64  `json:"id"`
	Item     string `json:"item"`
	Type     string `json:"type,omitempty"`
	Arch     string `json:"arch,omitempty"`
	Testcase string `json:"testcase"`
	Outcome  string `json:"outcome"`
	Note     string `json:"note,omitempty"`
	Origin   string `json:"origin"`
	// SubmitTime is as ResultsDB wrote it (UTC, no zone).
	SubmitTime string `json:"submit_time,omitempty"`
	// Href is the result in the API; Page is its web page.
	Href string `json:"href,omitempty"`
	Page string `json:"page,omitempty"`
	// RefURL is where the result's own log or artifacts are.
	RefURL string `json:"ref_url,omitempty"`
}

// eventBody is the part of ResultsDB's result JSON read here.
type eventBody struct {
	ID       *int64  `json:"id"`
	Outcome  string  `json:"outcome"`
	Note     *string `json:"note"`
	RefURL   *string `json:"ref_url"`
	Href     string  `json:"href"`
	Submit   string  `json:"submit_time"`
	Origin   *string `json:"origin"`
	Testcase struct {
		Name string `json:"name"`
	} `json:"testcase"`
	Data map[string]json.RawMessage `json:"data"`
}

// ParseEvent reads a resultsdb.result.new message body (ResultsDB's result
// JSON, reference §6.5). The error names the field that is wrong.
func ParseEvent(body []byte) (Result, error) {
	if len(body) > MaxEvent {
		return Result{}, fmt.Errorf("message body is %d bytes, over the %d a result can be", len(body), MaxEvent)
	}
	var b eventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Result{}, fmt.Errorf("message body is not a result: %w", err)
	}
	if b.ID == nil || *b.ID <= 0 {
		return Result{}, errors.New("message body: id: missing or not a positive number")
	}
	r := Result{ID: *b.ID, Outcome: b.Outcome, Testcase: b.Testcase.Name, Href: b.Href, SubmitTime: b.Submit, Origin: DefaultOrigin}
	if r.Outcome == "" {
		return Result{}, errors.New("message body: outcome: missing")
	}
	if r.Testcase == "" {
		return Result{}, errors.New("message body: testcase.name: missing")
	}
	if b.Note != nil {
		r.Note = *b.Note
	}
	if b.RefURL != nil {
		r.RefURL = *b.RefURL
	}
	if b.Origin != nil && *b.Origin != "" {
		r.Origin = *b.Origin
	}
	for key, dst := range map[string]*string{"item": &r.Item, "type": &r.Type, "arch": &r.Arch} {
		raw, ok := b.Data[key]
		if !ok {
			continue
		}
		v, err := firstValue(raw)
		if err != nil {
			return Result{}, fmt.Errorf("message body: data.%s: %w", key, err)
		}
		*dst = v
	}
	for name, f := range map[string]*string{"outcome": &r.Outcome, "testcase.name": &r.Testcase, "note": &r.Note, "origin": &r.Origin,
		"data.item": &r.Item, "data.type": &r.Type, "data.arch": &r.Arch, "href": &r.Href, "ref_url": &r.RefURL, "submit_time": &r.SubmitTime} {
		if !utf8.ValidString(*f) || strings.ContainsRune(*f, 0) {
			return Result{}, fmt.Errorf("message body: %s: not valid text", name)
		}
		*f = clip(*f)
	}
	r.Page = pageURL(r.Href)
	return r, nil
}

// firstValue reads a data value: ResultsDB sends lists of strings; a
// plain string is taken as well.
func firstValue(raw json.RawMessage) (string, error) {
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		if len(list) == 0 {
			return "", nil
		}
		return list[0], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("want a list of strings")
	}
	return s, nil
}

func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	cut := maxField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// pageURL is a result's web page, from its API href: ResultsDB's pages
// sit at the root, beside /api/v2.0.
func pageURL(href string) string {
	const api = "/api/v2.0/results/"
	i := strings.LastIndex(href, api)
	if i < 0 {
		return href
	}
	return href[:i] + "/results/" + href[i+len(api):]
}
