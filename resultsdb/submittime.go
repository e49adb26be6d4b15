package resultsdb

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The range of submit_time: what Python's datetime (and so ResultsDB) can
// hold, years 1 to 9999.
var (
	minSubmitTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxSubmitTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// submitTimeRE is the format ResultsDB 2.2 tries with strptime:
// %Y-%m-%dT%H:%M:%S.%f followed by nothing, Z, +00 or %z. strptime takes
// one-digit months, days (also " 5"), hours, minutes and seconds, and
// ignores case (so "t" and "z" do). Unlike ResultsDB we also take the
// seconds without a fraction, as earlier versions of this server did.
var submitTimeRE = regexp.MustCompile(`^([0-9]{4})-(1[0-2]|0[1-9]|[1-9])-(3[01]|[12][0-9]|0[1-9]|[1-9]| [1-9])[Tt]` +
	`(2[0-3]|[01][0-9]|[0-9]):([0-5][0-9]|[0-9]):(6[01]|[0-5][0-9]|[0-9])(?:\.([0-9]{1,6}))?` +
	`(|[Zz]|\+00|([+-])([0-9]{2})(:?)([0-5][0-9])(?:(:?)([0-5][0-9])(?:\.([0-9]{1,6}))?)?)$`)

// parseSubmitTime reads submit_time as ResultsDB 2.2 does: milliseconds
// since the epoch as a number or a string ("1661324097123"), or a
// datetime (see submitTimeRE); a UTC offset is converted to UTC, as
// PostgreSQL does with the value ResultsDB hands it. The result is within
// years 1 to 9999.
func parseSubmitTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case json.Number:
		ms, err := strconv.ParseInt(x.String(), 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return time.Time{}, outOfRange(x.String())
		}
		if err != nil {
			return time.Time{}, badf("Malformed Request: submit_time: want milliseconds since the epoch, got %s", x)
		}
		return fromMillis(ms, x.String())
	case string:
		if t, ok, err := parseSubmitDatetime(x); ok || err != nil {
			return t, err
		}
		if ms, ok, err := pyInt(x); ok || err != nil {
			if err != nil {
				return time.Time{}, outOfRange(x)
			}
			return fromMillis(ms, x)
		}
		return time.Time{}, badf("Malformed Request: submit_time: want YYYY-MM-DDTHH:MM:SS.ffffff, got %q", x)
	}
	return time.Time{}, badf("Malformed Request: submit_time must be a number or a string, not %s", jsonType(v))
}

func outOfRange(what string) error {
	if len(what) > 40 {
		what = what[:40] + "…"
	}
	return badf("Malformed Request: submit_time %s is outside the years 1 to 9999", what)
}

// fromMillis is ResultsDB's time_from_milliseconds: floor division, so
// -1 is the last millisecond of 1969.
func fromMillis(ms int64, what string) (time.Time, error) {
	sec, rem := ms/1000, ms%1000
	if rem < 0 {
		sec, rem = sec-1, rem+1000
	}
	t := time.Unix(sec, rem*int64(time.Millisecond)).UTC()
	if t.Before(minSubmitTime) || t.After(maxSubmitTime) {
		return time.Time{}, outOfRange(what)
	}
	return t, nil
}

// pyInt is Python's int(str) for ASCII digits: surrounding white space,
// a sign, and single underscores between digits. ok is false for what
// int() refuses; err reports a number too large for int64.
func pyInt(s string) (n int64, ok bool, err error) {
	s = strings.TrimSpace(s)
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
		return 0, false, nil
	}
	clean := strings.ReplaceAll(digits, "_", "")
	for _, c := range clean {
		if c < '0' || c > '9' {
			return 0, false, nil
		}
	}
	if s[0] == '-' {
		clean = "-" + clean
	}
	n, err = strconv.ParseInt(clean, 10, 64)
	return n, true, err
}

// parseSubmitDatetime reads the datetime form; ok is false when s does
// not have it.
func parseSubmitDatetime(s string) (t time.Time, ok bool, err error) {
	m := submitTimeRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, nil
	}
	num := func(i int) int {
		n, _ := strconv.Atoi(strings.TrimSpace(m[i]))
		return n
	}
	usec := 0
	if m[7] != "" {
		usec, _ = strconv.Atoi((m[7] + "00000")[:6])
	}
	year, month, day := num(1), num(2), num(3)
	hour, minute, sec := num(4), num(5), num(6)
	t = time.Date(year, time.Month(month), day, hour, minute, sec, usec*1000, time.UTC)
	// strptime refuses what datetime() refuses: year 0, February 30th,
	// second 60.
	if year == 0 || t.Day() != day || sec > 59 {
		return time.Time{}, false, nil
	}
	if m[9] != "" {
		// strptime: a colon between hours and minutes needs one before the
		// seconds too, and the offset must be less than a day.
		if m[14] != "" && m[11] != m[13] {
			return time.Time{}, false, nil
		}
		off := time.Duration(num(10))*time.Hour + time.Duration(num(12))*time.Minute
		if m[14] != "" {
			off += time.Duration(num(14)) * time.Second
			if m[15] != "" {
				frac, _ := strconv.Atoi((m[15] + "00000")[:6])
				off += time.Duration(frac) * time.Microsecond
			}
		}
		if off >= 24*time.Hour {
			return time.Time{}, false, nil
		}
		if m[9] == "-" {
			off = -off
		}
		t = t.Add(-off)
	}
	if t.Before(minSubmitTime) || t.After(maxSubmitTime) {
		return time.Time{}, true, outOfRange(s)
	}
	return t, true, nil
}
