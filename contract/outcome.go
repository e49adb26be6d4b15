package contract

import (
	"fmt"
	"strings"
)

// Outcome is a result's verdict.
type Outcome string

// Outcomes in order of priority, best first (reference §2.10). ABORTED and
// CRASHED mean the infrastructure failed, not the package.
const (
	Passed          Outcome = "PASSED"
	Info            Outcome = "INFO"
	Failed          Outcome = "FAILED"
	NeedsInspection Outcome = "NEEDS_INSPECTION"
	Aborted         Outcome = "ABORTED"
	Crashed         Outcome = "CRASHED"
)

// Outcomes lists every outcome the runner knows, best first.
var Outcomes = []Outcome{Passed, Info, Failed, NeedsInspection, Aborted, Crashed}

// ParseOutcome accepts an outcome in any case; an empty one reads as
// NEEDS_INSPECTION, as libtaskotron's CheckDetail did.
func ParseOutcome(s string) (Outcome, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return NeedsInspection, nil
	}
	for _, o := range Outcomes {
		if string(o) == s {
			return o, nil
		}
	}
	return "", fmt.Errorf("unknown outcome %q (want one of PASSED, INFO, FAILED, NEEDS_INSPECTION, ABORTED, CRASHED)", s)
}

// Rank is the outcome's place in the priority order; unknown outcomes rank
// as NEEDS_INSPECTION.
func (o Outcome) Rank() int {
	for i, known := range Outcomes {
		if o == known {
			return i
		}
	}
	return 3
}

// Worst returns the worse of two outcomes.
func Worst(a, b Outcome) Outcome {
	if b.Rank() > a.Rank() {
		return b
	}
	return a
}

// Broken tells whether the outcome means the infrastructure failed.
func (o Outcome) Broken() bool { return o == Aborted || o == Crashed }

// Summary counts outcomes in priority order, e.g. "3 PASSED, 1 INFO, 2 FAILED".
func Summary(outcomes []Outcome) string {
	counts := map[Outcome]int{}
	for _, o := range outcomes {
		counts[o]++
	}
	var parts []string
	for _, o := range Outcomes {
		if n := counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	return strings.Join(parts, ", ")
}
