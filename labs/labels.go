package labs

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Labels are what a lab offers (arch=armv7hl, board=beaglebone-black,
// cpu=cortex-a9, lab=<name>, any key=value), and what a request asks for in
// its where: a request goes to a lab whose labels include all of its own.
type Labels map[string]string

var (
	labelKeyRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$`)
	labelValueRe = regexp.MustCompile(`^[A-Za-z0-9_.:+@/\-]{1,200}$`)
)

// maxLabels bounds the labels of one lab or request.
const maxLabels = 64

// CheckLabel says, in one line, what is wrong with one label.
func CheckLabel(key, value string) error {
	if !labelKeyRe.MatchString(key) {
		return fmt.Errorf("label key %q: use letters, digits, '_', '.', '-' and '/' (at most 63, starting with a letter or digit)", clip(key))
	}
	if !labelValueRe.MatchString(value) {
		return fmt.Errorf("label %s=%q: the value takes letters, digits and '_.:+@/-' (1 to 200)", key, clip(value))
	}
	return nil
}

// Check says what is wrong with a set of labels.
func (l Labels) Check() error {
	if len(l) > maxLabels {
		return fmt.Errorf("%d labels: at most %d", len(l), maxLabels)
	}
	for _, k := range l.keys() {
		if err := CheckLabel(k, l[k]); err != nil {
			return err
		}
	}
	return nil
}

// ParseLabel reads one key=value.
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("label %q: want key=value", clip(s))
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	return k, v, CheckLabel(k, v)
}

// ParseLabels reads key=value items (each may hold several, comma-separated).
func ParseLabels(items []string) (Labels, error) {
	l := Labels{}
	for _, item := range items {
		for _, s := range strings.Split(item, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			k, v, err := ParseLabel(s)
			if err != nil {
				return nil, err
			}
			if old, ok := l[k]; ok && old != v {
				return nil, fmt.Errorf("label %s given twice (%s and %s)", k, old, v)
			}
			l[k] = v
		}
	}
	return l, l.Check()
}

func (l Labels) keys() []string {
	ks := make([]string, 0, len(l))
	for k := range l {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// String is the labels as sorted key=value pairs joined by commas: one
// canonical text per set, which the store groups requests by.
func (l Labels) String() string {
	var b strings.Builder
	for i, k := range l.keys() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + l[k])
	}
	return b.String()
}

// Satisfies tells whether the labels include every label of where.
func (l Labels) Satisfies(where Labels) bool {
	for k, v := range where {
		if got, ok := l[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// clip keeps the start of a long value out of error lines.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
