// Package regression says when a result is a regression: its outcome is
// worse than the outcome of the same testcase and arch on the previous
// build of the same package, "previous" meaning the highest build of that
// package name that rpm orders lower (epochs, '~' and '^' as rpm has them).
//
// It is pure: it imports only rpmver and the standard library, so that the
// ResultsDB pages and API, and a notifier, judge regressions alike.
package regression

import (
	"cmp"
	"slices"

	"github.com/taskotron-go/taskotron/rpmver"
)

// The outcomes Taskotron reports. ABORTED and CRASHED are the
// infrastructure's failures, not the package's.
const (
	Passed          = "PASSED"
	Info            = "INFO"
	NeedsInspection = "NEEDS_INSPECTION"
	Failed          = "FAILED"
	Aborted         = "ABORTED"
	Crashed         = "CRASHED"
)

// PackageType is the ResultsDB item type whose items are builds (NVRs).
// Other types (bodhi_update, compose, …) have no versions to order.
const PackageType = "koji_build"

// Rank orders the package outcomes from best to worst as the overall
// outcome of a run does (design §2, contract.Outcomes): PASSED 0, INFO 1,
// FAILED 2, NEEDS_INSPECTION 3 (a check that could not tell). ok is false
// for ABORTED, CRASHED and any other outcome: they say nothing about the
// package.
func Rank(outcome string) (rank int, ok bool) {
	switch outcome {
	case Passed:
		return 0, true
	case Info:
		return 1, true
	case Failed:
		return 2, true
	case NeedsInspection:
		return 3, true
	}
	return 0, false
}

// Infrastructure reports whether an outcome is the infrastructure's
// failure (ABORTED, CRASHED) rather than a verdict on the package.
func Infrastructure(outcome string) bool { return outcome == Aborted || outcome == Crashed }

// Worse reports whether outcome is a regression from previous: both are
// package outcomes and outcome ranks worse. An infrastructure outcome on
// either side is never a regression.
func Worse(outcome, previous string) bool {
	now, ok1 := Rank(outcome)
	before, ok2 := Rank(previous)
	return ok1 && ok2 && now > before
}

// Build reads a ResultsDB item as a build: ok is false unless typ is
// PackageType and item parses as an NVR (name-[epoch:]version-release).
func Build(item, typ string) (rpmver.NVR, bool) {
	if typ != PackageType {
		return rpmver.NVR{}, false
	}
	n, err := rpmver.ParseNVR(item)
	return n, err == nil
}

// Compare orders two builds of one package as rpm does: epoch, then
// version, then release. Builds of different names are ordered by name,
// so that a sort groups each package together.
func Compare(a, b rpmver.NVR) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return rpmver.CompareEVR(a.EVR, b.EVR)
}

// NewestFirst sorts builds by name, and each name's builds from the
// highest version to the lowest. Builds that rpm orders equal (1.0 and
// 1.00) keep their order.
func NewestFirst(builds []rpmver.NVR) {
	slices.SortStableFunc(builds, func(a, b rpmver.NVR) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return -rpmver.CompareEVR(a.EVR, b.EVR)
	})
}

// Previous returns the previous build of nvr among builds: the highest
// one with the same name that rpm orders strictly lower. ok is false when
// there is none (nvr is the first build known).
func Previous(nvr rpmver.NVR, builds []rpmver.NVR) (prev rpmver.NVR, ok bool) {
	for _, b := range builds {
		if b.Name != nvr.Name || rpmver.CompareEVR(b.EVR, nvr.EVR) >= 0 {
			continue
		}
		if !ok || rpmver.CompareEVR(b.EVR, prev.EVR) > 0 {
			prev, ok = b, true
		}
	}
	return prev, ok
}

// Key is what two results must share to be compared across builds.
type Key struct {
	Testcase string
	Arch     string // "" when the result names none
}

// Result is one result as far as regressions go: the latest outcome of a
// testcase and arch on a build. ID is the caller's, carried through.
type Result struct {
	ID      int64
	Build   rpmver.NVR
	Key     Key
	Outcome string
}

// Pair is a regression: Result is worse than Previous, the result of the
// same testcase and arch on the previous build.
type Pair struct {
	Result, Previous Result
}

// Find returns the regressions among latest, which holds at most one
// result per build, testcase and arch (the latest of each); where there
// are several, the first is used. Every build in latest counts when
// looking for a previous build, even one without the testcase, so a
// result whose previous build did not run the testcase is no regression.
// The pairs come in the order of their results in latest.
func Find(latest []Result) []Pair {
	type slot struct {
		build string
		key   Key
	}
	byBuild := map[slot]Result{}
	var builds []rpmver.NVR
	seen := map[string]bool{}
	for _, r := range latest {
		s := slot{r.Build.String(), r.Key}
		if _, dup := byBuild[s]; !dup {
			byBuild[s] = r
		}
		if !seen[s.build] {
			seen[s.build] = true
			builds = append(builds, r.Build)
		}
	}
	var out []Pair
	for _, r := range latest {
		if byBuild[slot{r.Build.String(), r.Key}].ID != r.ID {
			continue
		}
		prev, ok := Previous(r.Build, builds)
		if !ok {
			continue
		}
		p, ok := byBuild[slot{prev.String(), r.Key}]
		if ok && Worse(r.Outcome, p.Outcome) {
			out = append(out, Pair{Result: r, Previous: p})
		}
	}
	return out
}
