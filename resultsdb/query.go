package resultsdb

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// badRequest is a client error: status 400 with this message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return &badRequest{msg: fmt.Sprintf(format, a...)} }

// resultParams are the query parameters /results and /results/latest
// understand; every other key filters on result data (reference §6.2).
var resultParams = map[string]bool{
	"page": true, "limit": true, "since": true, "outcome": true, "groups": true,
	"_sort": true, "testcases": true, "testcases:like": true, "_distinct_on": true,
	"callback": true, "_": true,
}

const (
	defaultLimit = 20
	maxLimit     = 10000
	// maxPage keeps page*limit far from overflowing.
	maxPage = 1000000000
	// maxFilterValues bounds the parameters of one query.
	maxFilterValues = 1000
	// maxDistinctOn bounds the _distinct_on keys, one join each: SQLite
	// joins at most 64 tables (the result table is one), and PostgreSQL
	// plans 200 of them in 0.8 s and 1000 in 30 s.
	maxDistinctOn = 63
)

// pageLimit reads page and limit as ResultsDB does (0-based pages).
func pageLimit(v url.Values) (page, limit int, err error) {
	page, limit = 0, defaultLimit
	if s := v.Get("page"); s != "" {
		if page, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
			return 0, 0, badf("Malformed Request: page: want a whole number 0 or more, got %q", s)
		}
		// As ResultsDB: a page before the first is the first.
		page = max(page, 0)
		if page > maxPage {
			return 0, 0, badf("Malformed Request: page: at most %d, got %d", maxPage, page)
		}
	}
	if s := v.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(strings.TrimSpace(s)); err != nil || limit < 0 {
			return 0, 0, badf("Malformed Request: limit: want a whole number 0 or more, got %q", s)
		}
		if limit > maxLimit {
			return 0, 0, badf("Malformed Request: limit: at most %d, got %d", maxLimit, limit)
		}
	}
	return page, limit, nil
}

// commaList splits a comma list, trims the items and drops empty ones.
func commaList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// likePattern turns ResultsDB's '*' wildcard into SQL LIKE's '%'.
func likePattern(s string) string { return strings.ReplaceAll(s, "*", "%") }

// likePatterns turns the patterns of parameter param into LIKE patterns.
// One ending in a lone backslash is refused: PostgreSQL's LIKE takes '\'
// as its escape character and fails on one that escapes nothing.
func likePatterns(param string, list []string) ([]string, error) {
	out := make([]string, len(list))
	for i, s := range list {
		if n := len(s) - len(strings.TrimRight(s, `\`)); n%2 == 1 {
			return nil, badf("Malformed Request: %s: the pattern %s ends in a backslash, which escapes nothing", param, pyRepr(s))
		}
		out[i] = likePattern(s)
	}
	return out, nil
}

// parseQuery reads a query string as Werkzeug does (parse_qsl): pairs
// split at '&' (';' is an ordinary character), '+' is a space, a '%' not
// followed by two hex digits stays as it is, and bytes that are not UTF-8
// become U+FFFD. A NUL, which PostgreSQL cannot compare with text, is
// refused with the parameter's name.
func parseQuery(raw string) (url.Values, error) {
	v := url.Values{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		k, val = formDecode(k), formDecode(val)
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(val, 0) >= 0 {
			return nil, badf("Malformed Request: query parameter %s: the NUL character (\\u0000) cannot be used", pyRepr(k))
		}
		v[k] = append(v[k], val)
	}
	return v, nil
}

// formDecode is Python's unquote_plus with errors="replace".
func formDecode(s string) string {
	if !strings.ContainsAny(s, "%+") && utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s):
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return pyReplace(string(b))
}

// pyReplace replaces what is not UTF-8 in s as Python's decoder does with
// errors="replace": one U+FFFD for each maximal invalid subsequence.
func pyReplace(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || n > 1 {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += invalidPrefix(s[i:])
	}
	return b.String()
}

// invalidPrefix is the length of the maximal subpart of an ill-formed
// UTF-8 sequence at the start of s: its lead byte and the continuation
// bytes that could still have made it valid.
func invalidPrefix(s string) int {
	c := s[0]
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		lo, need = 0xA0, 2
	case c == 0xED:
		hi, need = 0x9F, 2
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		lo, need = 0x90, 3
	case c == 0xF4:
		hi, need = 0x8F, 3
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	}
	n := 1
	for n <= need && n < len(s) && s[n] >= lo && s[n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

var sortRE = regexp.MustCompile(`^(asc|desc):(.+)$`)

// parseResultQuery reads the filters of /results (and of /results/latest,
// which ignores outcome). filtered reports whether any filter other than
// outcome, _sort and paging was given. With origins, origin= filters on
// the results' origins; without, it is a data filter, as in ResultsDB.
func parseResultQuery(v url.Values, outcomes []string, origins bool) (q ResultQuery, filtered bool, err error) {
	if raw, ok := v["outcome"]; ok && len(raw) > 0 {
		for _, o := range strings.Split(raw[0], ",") {
			o = strings.ToUpper(strings.TrimSpace(o))
			if !contains(outcomes, o) {
				return q, false, badf("outcome %s not one of %s", pyRepr(o), pyTuple(outcomes))
			}
			q.Outcomes = append(q.Outcomes, o)
		}
	}
	if since, ok := v["since"]; ok && len(since) > 0 {
		q.Since, q.Until, err = parseSince(since[0])
		if err != nil {
			return q, false, badf("'since' parameter not in ISO8601 format")
		}
		filtered = filtered || !q.Since.IsZero() || !q.Until.IsZero()
	}
	q.Groups = commaList(v.Get("groups"))
	q.Testcases = commaList(v.Get("testcases"))
	if q.TestcasesLike, err = likePatterns("testcases:like", commaList(v.Get("testcases:like"))); err != nil {
		return q, false, err
	}
	if origins {
		q.Origins = commaList(v.Get("origin"))
	}
	filtered = filtered || len(q.Groups) > 0 || len(q.Testcases) > 0 || len(q.TestcasesLike) > 0 || len(q.Origins) > 0

	switch s := v.Get("_sort"); {
	case s == "disable_sorting":
		q.Sort = SortNone
	case sortRE.MatchString(s):
		m := sortRE.FindStringSubmatch(s)
		if m[2] == "submit_time" && m[1] == "asc" {
			q.Sort = SortAsc
		}
	}

	// Data filters: any other key, in a stable order; repeated keys merge.
	keys := make([]string, 0, len(v))
	for k := range v {
		if !resultParams[k] && !(origins && k == "origin") {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	for _, k := range keys {
		var values []string
		for _, raw := range v[k] {
			values = append(values, strings.Split(raw, ",")...)
		}
		f := DataFilter{Key: k, Values: values}
		if key, mod, ok := strings.Cut(k, ":"); ok && !strings.Contains(mod, ":") {
			f.Key = key
			if mod == "like" {
				f.Like = true
				if f.Values, err = likePatterns(k, values); err != nil {
					return q, false, err
				}
			}
		}
		q.Data = append(q.Data, f)
		filtered = true
	}
	n := len(q.Outcomes) + len(q.Groups) + len(q.Testcases) + len(q.TestcasesLike) + len(q.Origins)
	for _, f := range q.Data {
		n += len(f.Values)
	}
	if n > maxFilterValues {
		return q, false, badf("Malformed Request: at most %d values in all filters together, got %d", maxFilterValues, n)
	}
	return q, filtered, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// pyRepr quotes a string the way Python's repr does, as ResultsDB's
// messages show it.
func pyRepr(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	var b strings.Builder
	b.WriteString(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case string(r) == q:
			b.WriteString(`\` + q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(q)
	return b.String()
}

func pyTuple(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = pyRepr(s)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func pyList(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = pyRepr(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// parseSince reads `since`: one ISO 8601 date or datetime, or "start,end".
// A timezone is dropped, not converted, as ResultsDB does.
func parseSince(s string) (start, end time.Time, err error) {
	parts := strings.Split(s, ",")
	if start, err = parseISO8601(parts[0]); err != nil {
		return start, end, err
	}
	if len(parts) > 1 {
		if end, err = parseISO8601(parts[1]); err != nil {
			return start, end, err
		}
	}
	return start, end, nil
}

var isoRE = regexp.MustCompile(`^(\d{4})(?:-?(\d{2})(?:-?(\d{2})` +
	`(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?` +
	`(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$`)

// parseISO8601 accepts what the iso8601 Python module does: a year with
// optional month, day, time, fraction and zone, in basic or extended form.
func parseISO8601(s string) (time.Time, error) {
	m := isoRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return time.Time{}, fmt.Errorf("not ISO 8601: %q", s)
	}
	num := func(i, def int) int {
		if m[i] == "" {
			return def
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	year, month, day := num(1, 0), num(2, 1), num(3, 1)
	hour, minute, sec := num(4, 0), num(5, 0), num(6, 0)
	usec := 0
	if frac := m[7]; frac != "" {
		frac = (frac + "000000")[:6]
		usec, _ = strconv.Atoi(frac)
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, fmt.Errorf("not a valid date or time: %q", s)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, usec*1000, time.UTC)
	if t.Day() != day || year == 0 {
		return time.Time{}, fmt.Errorf("not a valid date: %q", s)
	}
	return t, nil
}

// isoformat writes a time as Python's datetime.isoformat does for a naive
// UTC value: microseconds only when there are any.
func isoformat(t time.Time) string {
	t = t.UTC()
	if us := t.Nanosecond() / 1000; us != 0 {
		return t.Format("2006-01-02T15:04:05") + fmt.Sprintf(".%06d", us)
	}
	return t.Format("2006-01-02T15:04:05")
}

var (
	pageRE     = regexp.MustCompile(`([?&])page=([0-9]+)`)
	callbackRE = regexp.MustCompile(`([?&])callback=[^&]*&?`)
	ampsRE     = regexp.MustCompile(`&+`)
)

// prevNext builds the prev and next links from the request URL, as
// ResultsDB does: page replaced or appended, callback dropped.
func prevNext(requestURL string, more bool) (prev, next *string) {
	const placeholder = "\x00PAGE\x00"
	page := 0
	var base string
	if m := pageRE.FindStringSubmatch(requestURL); m != nil {
		page, _ = strconv.Atoi(m[2])
		base = pageRE.ReplaceAllLiteralString(requestURL, m[1]+"page="+placeholder)
	} else if strings.Contains(requestURL, "?") {
		base = requestURL + "&page=" + placeholder
	} else {
		base = requestURL + "?page=" + placeholder
	}
	base = callbackRE.ReplaceAllString(base, "$1")
	base = ampsRE.ReplaceAllString(base, "&")
	if page > 0 {
		p := strings.ReplaceAll(base, placeholder, strconv.Itoa(page-1))
		prev = &p
	}
	if more {
		n := strings.ReplaceAll(base, placeholder, strconv.Itoa(page+1))
		next = &n
	}
	return prev, next
}
