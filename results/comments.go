package results

import (
	"fmt"
	"strings"

	"github.com/taskotron-go/taskotron/contract"
)

// CommentText is the comment for one result, in AutoQA's format; without
// a log URL the sentence ends after the arch.
func CommentText(checkname string, outcome contract.Outcome, arch, logURL string) string {
	if arch == "" {
		arch = "noarch"
	}
	if logURL == "" {
		// No artifacts URL configured: no dangling "Result log:".
		return fmt.Sprintf("Taskotron: %s test %s on %s.", checkname, outcome, arch)
	}
	return fmt.Sprintf("Taskotron: %s test %s on %s. Result log: %s", checkname, outcome, arch, logURL)
}

// Comments lists the Bodhi comments a set of posts calls for: results on a
// Bodhi update (type bodhi_update, or a bodhi_update keyval) whose outcome
// is one of on.
func Comments(posts []contract.ResultsDBPost, on map[contract.Outcome]bool) []contract.BodhiComment {
	var out []contract.BodhiComment
	for _, p := range posts {
		if !on[p.Outcome] {
			continue
		}
		update := ""
		if t, _ := p.Data["type"].(string); t == "bodhi_update" {
			update, _ = p.Data["item"].(string)
		}
		if u, ok := p.Data["bodhi_update"].(string); ok && u != "" {
			update = u
		}
		if update == "" {
			continue
		}
		arch := ""
		switch a := p.Data["arch"].(type) {
		case string:
			arch = a
		case []string:
			arch = strings.Join(a, ",")
		}
		out = append(out, contract.BodhiComment{Update: update, Text: CommentText(p.Testcase.Name, p.Outcome, arch, p.RefURL), Karma: 0})
	}
	return out
}

// CommentOn reads the outcomes that get a comment (bodhi.comment_on);
// none means FAILED and NEEDS_INSPECTION.
func CommentOn(names []string) (map[contract.Outcome]bool, error) {
	if len(names) == 0 {
		names = []string{string(contract.Failed), string(contract.NeedsInspection)}
	}
	on := map[contract.Outcome]bool{}
	for _, n := range names {
		o, err := contract.ParseOutcome(n)
		if err != nil {
			return nil, fmt.Errorf("bodhi.comment_on: %w", err)
		}
		on[o] = true
	}
	return on, nil
}
