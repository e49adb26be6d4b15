package koji

import (
	"slices"
	"sort"
	"strings"
)

// baseArches maps a base arch to every arch it stands for, as libtaskotron's
// arch_utils did (i386 means any 32-bit x86).
var baseArches = map[string][]string{
	"i386":   {"i386", "i486", "i586", "i686"},
	"armhfp": {"armhfp", "armv7hl", "armv7hnl"},
}

// ExpandArch returns the arches a base arch stands for; other arches stand
// for themselves.
func ExpandArch(arch string) []string {
	if a, ok := baseArches[arch]; ok {
		return a
	}
	return []string{arch}
}

// Selection says which RPMs of a build to take (the koji directive's arch,
// arch_exclude, src and debuginfo parameters).
type Selection struct {
	// All takes every binary arch.
	All bool
	// Arches are the binary arches wanted when not All, expanded.
	Arches []string
	// Exclude are arches never taken, expanded.
	Exclude   []string
	Src       bool
	Debuginfo bool
}

// NewSelection applies the koji directive's arch rules: "all" anywhere in
// arch means every arch; noarch is added unless arch is empty; base arches
// expand (i386 → i386, i486, i586, i686); arch_exclude removes arches
// after that.
func NewSelection(arch, exclude []string, src, debuginfo bool) Selection {
	s := Selection{Src: src, Debuginfo: debuginfo}
	for _, a := range exclude {
		s.Exclude = append(s.Exclude, ExpandArch(a)...)
	}
	if slices.Contains(arch, "all") {
		s.All = true
		return s
	}
	if len(arch) == 0 {
		return s
	}
	set := map[string]bool{"noarch": true}
	for _, a := range arch {
		for _, e := range ExpandArch(a) {
			set[e] = true
		}
	}
	for a := range set {
		if !slices.Contains(s.Exclude, a) && a != "src" {
			s.Arches = append(s.Arches, a)
		}
	}
	if set["src"] {
		s.Src = true
	}
	sort.Strings(s.Arches)
	return s
}

// HubArches is the arches filter to hand listRPMs, nil for all.
func (s Selection) HubArches() []string {
	if s.All {
		return nil
	}
	a := append([]string(nil), s.Arches...)
	if s.Src {
		a = append(a, "src")
	}
	return a
}

// IsDebuginfo tells debuginfo and debugsource packages by name.
func IsDebuginfo(name string) bool {
	return strings.HasSuffix(name, "-debuginfo") || strings.HasSuffix(name, "-debugsource") ||
		strings.Contains(name, "-debuginfo-")
}

// Keep tells whether the selection takes r.
func (s Selection) Keep(r RPM) bool {
	if r.Arch == "src" {
		return s.Src
	}
	if IsDebuginfo(r.Name) && !s.Debuginfo {
		return false
	}
	if slices.Contains(s.Exclude, r.Arch) {
		return false
	}
	return s.All || slices.Contains(s.Arches, r.Arch)
}
