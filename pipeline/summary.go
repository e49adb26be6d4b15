package pipeline

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/printable"
	"github.com/taskotron-go/taskotron/results"
	"github.com/taskotron-go/taskotron/trigger"
)

func messageSummary(m trigger.MessageOutcome) MessageSummary {
	s := MessageSummary{ID: m.MsgID, Topic: m.Topic, Origin: m.Origin, Status: m.Outcome, Reason: m.Reason}
	for _, j := range m.Jobs {
		s.Jobs = append(s.Jobs, JobSummary{UUID: j.UUID, TaskName: j.TaskName, Item: j.Item, ItemType: j.ItemType, Arch: j.Arch})
	}
	return s
}

// Summary is what `up` tells a person at the end: each message, the jobs it
// made, and how each job ended.
type Summary struct {
	// URL is where the results can be browsed.
	URL      string           `json:"url"`
	Messages []MessageSummary `json:"messages"`
}

// MessageSummary is one message's fate.
type MessageSummary struct {
	ID     string       `json:"id"`
	Topic  string       `json:"topic"`
	Origin string       `json:"origin"`
	Status string       `json:"status"` // jobs, fused, ignored, rejected, unacked
	Reason string       `json:"reason,omitempty"`
	Jobs   []JobSummary `json:"jobs,omitempty"`
}

// JobSummary is one job's fate.
type JobSummary struct {
	UUID     string           `json:"uuid"`
	TaskName string           `json:"taskname"`
	Item     string           `json:"item"`
	ItemType string           `json:"item_type"`
	Arch     string           `json:"arch"`
	Status   string           `json:"execution_status,omitempty"`
	Outcomes []ResultOutcome  `json:"results,omitempty"`
	Outcome  contract.Outcome `json:"outcome,omitempty"`
}

// ResultOutcome is one result of a job.
type ResultOutcome struct {
	CheckName string           `json:"checkname"`
	Item      string           `json:"item"`
	Outcome   contract.Outcome `json:"outcome"`
	Note      string           `json:"note,omitempty"`
}

// tally gathers the summary while the roles run concurrently.
type tally struct {
	mu       sync.Mutex
	messages []MessageSummary
	byJob    map[string][2]int // job uuid -> message index, job index
	done     map[string]contract.Execution
}

func newTally() *tally {
	return &tally{byJob: map[string][2]int{}, done: map[string]contract.Execution{}}
}

func (t *tally) message(m MessageSummary) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for j, job := range m.Jobs {
		t.byJob[job.UUID] = [2]int{len(t.messages), j}
	}
	t.messages = append(t.messages, m)
}

func (t *tally) executed(exec contract.Execution) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[exec.UUID] = exec
}

func (t *tally) summary(url string) *Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Summary{URL: url, Messages: make([]MessageSummary, len(t.messages))}
	for i, m := range t.messages {
		m.Jobs = append([]JobSummary(nil), m.Jobs...)
		for j := range m.Jobs {
			exec, ok := t.done[m.Jobs[j].UUID]
			if !ok {
				m.Jobs[j].Status = "PENDING"
				continue
			}
			m.Jobs[j].Status = exec.ExecutionStatus
			var worst contract.Outcome
			_ = results.EachWithoutDetails(exec, func(r contract.Result) error {
				m.Jobs[j].Outcomes = append(m.Jobs[j].Outcomes, ResultOutcome{CheckName: r.CheckName, Item: r.Item, Outcome: r.Outcome, Note: r.Note})
				if worst == "" {
					worst = r.Outcome
				}
				worst = contract.Worst(worst, r.Outcome)
				return nil
			})
			m.Jobs[j].Outcome = worst
		}
		s.Messages[i] = m
	}
	// Messages finish in any order; a person reads them in the order given.
	sort.SliceStable(s.Messages, func(i, j int) bool { return s.Messages[i].Origin < s.Messages[j].Origin })
	return s
}

// Print writes the summary as a person reads it: message → jobs → outcomes.
func (s *Summary) Print(w io.Writer) {
	counts := map[string]int{}
	outcomes := map[contract.Outcome]int{}
	for _, m := range s.Messages {
		counts[m.Status]++
		short := m.Topic
		if i := strings.Index(short, ".prod."); i >= 0 {
			short = short[i+len(".prod."):]
		}
		fmt.Fprintf(w, "%s  %s", printable.Line(m.Origin), printable.Line(short))
		if len(m.Jobs) == 0 {
			reason := m.Reason
			if reason != "" {
				reason = ": " + reason
			}
			fmt.Fprintf(w, "  → %s%s\n", m.Status, printable.Line(reason))
			continue
		}
		fmt.Fprintln(w)
		for _, j := range m.Jobs {
			outcome := string(j.Outcome)
			if outcome == "" {
				outcome = j.Status
			}
			outcomes[j.Outcome]++
			fmt.Fprintf(w, "    → %-16s %-9s %-40s %s\n", printable.Line(j.TaskName), printable.Line(j.Arch), printable.Line(j.Item), printable.Line(outcome))
			for _, r := range j.Outcomes {
				if len(j.Outcomes) > 1 || r.Note != "" {
					fmt.Fprintf(w, "        %-44s %-16s %s\n", printable.Line(r.CheckName), r.Outcome, printable.Line(r.Note))
				}
			}
		}
	}
	var parts []string
	for _, st := range []string{trigger.OutcomeJobs, trigger.OutcomeFused, trigger.OutcomeIgnored, trigger.OutcomeRejected, trigger.OutcomeUnacked} {
		if counts[st] > 0 || st == trigger.OutcomeJobs {
			label := st
			if st == trigger.OutcomeJobs {
				label = "made jobs"
			}
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], label))
		}
	}
	var os []string
	keys := make([]string, 0, len(outcomes))
	for o := range outcomes {
		if o != "" {
			keys = append(keys, string(o))
		}
	}
	sort.Slice(keys, func(i, j int) bool { return contract.Outcome(keys[i]).Rank() < contract.Outcome(keys[j]).Rank() })
	for _, k := range keys {
		os = append(os, fmt.Sprintf("%d %s", outcomes[contract.Outcome(k)], k))
	}
	fmt.Fprintf(w, "\n%d messages: %s.", len(s.Messages), strings.Join(parts, ", "))
	if len(os) > 0 {
		fmt.Fprintf(w, " Jobs: %s.", strings.Join(os, ", "))
	}
	fmt.Fprintln(w)
	if s.URL != "" {
		fmt.Fprintf(w, "Results: %s\n", s.URL)
	}
}
