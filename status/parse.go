package status

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

var (
	metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	sampleRe     = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelRe      = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"`)
)

// ParseText reads the Prometheus text format strictly, as a scraper (or a
// script) would, and returns each sample's value keyed by its line's name
// and labels as written: `name{a="b"}`. It checks that every family has one
// HELP and one TYPE line before its samples, names are valid, label values
// escaped, and values numbers.
func ParseText(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	typed := map[string]string{}
	helped := map[string]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, arg, _ := strings.Cut(rest, " ")
			switch kind {
			case "HELP":
				if !metricNameRe.MatchString(name) || helped[name] {
					return nil, fmt.Errorf("line %d: bad or repeated HELP for %q", n, name)
				}
				helped[name] = true
			case "TYPE":
				if !metricNameRe.MatchString(name) || typed[name] != "" {
					return nil, fmt.Errorf("line %d: bad or repeated TYPE for %q", n, name)
				}
				switch arg {
				case "counter", "gauge", "untyped", "histogram", "summary":
				default:
					return nil, fmt.Errorf("line %d: unknown type %q", n, arg)
				}
				typed[name] = arg
			}
			continue
		}
		m := sampleRe.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a sample: %q", n, line)
		}
		family := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			// A histogram's or summary's samples carry suffixes.
			if base, ok := strings.CutSuffix(m[1], suffix); ok && (typed[base] == "histogram" || typed[base] == "summary") {
				family = base
			}
		}
		if typed[family] == "" || !helped[family] {
			return nil, fmt.Errorf("line %d: sample of %s before its HELP and TYPE", n, m[1])
		}
		for labels := m[3]; labels != ""; {
			lm := labelRe.FindStringSubmatch(labels)
			if lm == nil {
				return nil, fmt.Errorf("line %d: bad labels %q", n, m[3])
			}
			labels = strings.TrimPrefix(labels[len(lm[0]):], ",")
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value %q: %w", n, m[4], err)
		}
		key := m[1] + m[2]
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("line %d: sample %s repeated", n, key)
		}
		out[key] = v
	}
	return out, sc.Err()
}
