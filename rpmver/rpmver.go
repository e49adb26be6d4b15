// Package rpmver compares RPM versions the way rpm does (rpmvercmp, with
// epochs) and splits NVR / NEVR labels into their parts.
package rpmver

import (
	"fmt"
	"strconv"
	"strings"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// Compare compares two version (or release) strings segment by segment as
// rpm's rpmvercmp does: digits against digits numerically, letters against
// letters in ASCII order, a numeric segment newer than an alphabetic one,
// '~' sorting before everything (pre-releases) and '^' after the base
// version (snapshots). It returns -1, 0 or 1.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		// A caret sorts after the end of a version but before anything else.
		if ca == '^' || cb == '^' {
			if ca == 0 {
				return -1
			}
			if cb == 0 {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if ca == 0 || cb == 0 {
			break
		}
		si, sj := i, j
		numeric := isDigit(ca)
		class := isAlpha
		if numeric {
			class = isDigit
		}
		for i < len(a) && class(a[i]) {
			i++
		}
		for j < len(b) && class(b[j]) {
			j++
		}
		segA, segB := a[si:i], b[sj:j]
		if segB == "" {
			// b has a segment of the other kind here; numbers are newer.
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			segA = strings.TrimLeft(segA, "0")
			segB = strings.TrimLeft(segB, "0")
			if len(segA) != len(segB) {
				if len(segA) > len(segB) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(segA, segB); c != 0 {
			return c
		}
	}
	ra, rb := i < len(a), j < len(b)
	switch {
	case !ra && !rb:
		return 0
	case !ra:
		return -1
	default:
		return 1
	}
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// EVR is an epoch, version and release. A missing epoch counts as 0, as
// rpm compares it.
type EVR struct {
	Epoch   int
	Version string
	Release string
}

// String writes the EVR as rpm prints it: the epoch only when not zero.
func (e EVR) String() string {
	if e.Epoch != 0 {
		return fmt.Sprintf("%d:%s-%s", e.Epoch, e.Version, e.Release)
	}
	return e.Version + "-" + e.Release
}

// CompareEVR compares epochs numerically, then versions, then releases.
func CompareEVR(a, b EVR) int {
	switch {
	case a.Epoch < b.Epoch:
		return -1
	case a.Epoch > b.Epoch:
		return 1
	}
	if c := Compare(a.Version, b.Version); c != 0 {
		return c
	}
	return Compare(a.Release, b.Release)
}

// NVR is a package label: name, optional epoch, version and release.
type NVR struct {
	Name string
	EVR
}

// String writes name-version-release, with the epoch as N-E:V-R when set.
func (n NVR) String() string { return n.Name + "-" + n.EVR.String() }

// ParseNVR splits "name-version-release" or "name-epoch:version-release"
// (also "epoch:name-version-release"). Names may contain dashes; version
// and release may not.
func ParseNVR(s string) (NVR, error) {
	orig := s
	var n NVR
	r := strings.LastIndexByte(s, '-')
	if r <= 0 || r == len(s)-1 {
		return n, fmt.Errorf("NVR %q: want name-version-release", orig)
	}
	n.Release = s[r+1:]
	s = s[:r]
	v := strings.LastIndexByte(s, '-')
	if v <= 0 || v == len(s)-1 {
		return n, fmt.Errorf("NVR %q: want name-version-release", orig)
	}
	n.Name, n.Version = s[:v], s[v+1:]
	if e, ver, ok := strings.Cut(n.Version, ":"); ok {
		epoch, err := parseEpoch(e)
		if err != nil || ver == "" {
			return NVR{}, fmt.Errorf("NVR %q: bad epoch %q", orig, e)
		}
		n.Epoch, n.Version = epoch, ver
	} else if e, name, ok := strings.Cut(n.Name, ":"); ok {
		epoch, err := parseEpoch(e)
		if err != nil || name == "" {
			return NVR{}, fmt.Errorf("NVR %q: bad epoch %q", orig, e)
		}
		n.Epoch, n.Name = epoch, name
	}
	if strings.Contains(n.Release, ":") || strings.Contains(n.Version, ":") || strings.ContainsAny(n.Name, ": \t\n/") {
		return NVR{}, fmt.Errorf("NVR %q: want name-version-release", orig)
	}
	return n, nil
}

func parseEpoch(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty epoch")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("epoch %q is not a number", s)
	}
	return n, nil
}

// DistTag returns the Fedora release a release string was built for, from
// its ".fcNN" part: "1.fc39" gives 39. ok is false when there is none.
func DistTag(release string) (int, bool) {
	for _, part := range strings.Split(release, ".") {
		if rest, found := strings.CutPrefix(part, "fc"); found && rest != "" {
			digits := rest
			for k := 0; k < len(rest); k++ {
				if !isDigit(rest[k]) {
					digits = rest[:k]
					break
				}
			}
			if n, err := strconv.Atoi(digits); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
