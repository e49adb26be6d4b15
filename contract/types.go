package contract

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message is a bus message in the Fedora Messaging wire format (design §2.1).
type Message struct {
	ID      string         `json:"id,omitempty"`
	Topic   string         `json:"topic"`
	Headers map[string]any `json:"headers,omitempty"`
	Body    map[string]any `json:"body"`
	Extra   Extra          `json:"-"`
}

// MessageData is what trigger rules see (design §2.2): message_type, item,
// item_type and whatever else the normaliser for that message type adds.
type MessageData map[string]any

// Job is what the trigger queues for a runner (design §2.3).
type Job struct {
	Item      string    `json:"item"`
	ItemType  string    `json:"item_type"`
	TaskName  string    `json:"taskname"`
	Arch      string    `json:"arch"`
	UUID      string    `json:"uuid"`
	MsgID     string    `json:"msg_id"`
	Created   time.Time `json:"created"`
	Attempt   int       `json:"attempt"`
	Priority  int       `json:"priority"`
	GitRepo   string    `json:"git_repo,omitempty"`
	GitBranch string    `json:"git_branch,omitempty"`
	// Revision is the item's revision when it has one (a commit, a
	// compose id): part of the job's dedup identity.
	Revision string `json:"revision,omitempty"`
	// MatchHostArch: only a worker on a machine of Arch may run the job
	// (a rule's match_host_arch).
	MatchHostArch bool `json:"match_host_arch,omitempty"`
	// Rule names the trigger rule that made the job: <rules file>:<line>.
	Rule string `json:"rule,omitempty"`
	// Labels: only a lab offering all of these labels may run the job (a
	// rule's where:); such a job is a request for the labs on the central
	// server, not a job for the workers.
	Labels map[string]string `json:"labels,omitempty"`
	Extra  Extra             `json:"-"`
}

// RunnerInput is what the runner needs to execute one task (design §2.4).
type RunnerInput struct {
	Item     string `json:"item"`
	ItemType string `json:"item_type"`
	UUID     string `json:"uuid"`
	Arch     string `json:"arch"`
	TaskName string `json:"taskname"`
	Formula  string `json:"formula"`
	JobID    string `json:"jobid,omitempty"`
	// FormulaName names the formula in messages as its author knows it
	// (<task>@<commit>/runtask.yml), not by its path in a checkout cache.
	FormulaName string `json:"formula_name,omitempty"`
	// TaskOrigin is the task repository's origin URL, which the result
	// namespaces are checked against.
	TaskOrigin string `json:"task_origin,omitempty"`
	Extra      Extra  `json:"-"`
}

// Execution states (design §2.5): about running, not about the verdict.
const (
	ExecutionOK    = "OK"
	ExecutionNotOK = "NOT_OK"
)

// Execution is the runner's account of one run (design §2.5).
type Execution struct {
	UUID            string   `json:"uuid"`
	ExecutionStatus string   `json:"execution_status"`
	Status          string   `json:"status,omitempty"`
	ExitCode        int      `json:"exit_code"`
	Artifacts       string   `json:"artifacts"`
	Results         []Result `json:"results"`
	// ResultsFile, when set, holds the results instead of Results (which
	// is then empty): one JSON result per line, ResultCount of them, which
	// the runner writes when a task's output has more results than it
	// keeps in memory. results.Each reads either.
	ResultsFile string `json:"results_file,omitempty"`
	ResultCount int    `json:"result_count,omitempty"`
	// DetailsFile holds the details of ResultsFile's results, one JSON
	// value a line in the same order (null for a result without): apart,
	// so that reading the results to report them, which needs none, does
	// not read what is most of their bytes.
	DetailsFile string `json:"details_file,omitempty"`
	Item        string `json:"item,omitempty"`
	ItemType    string `json:"item_type,omitempty"`
	TaskName    string `json:"taskname,omitempty"`
	Arch        string `json:"arch,omitempty"`
	// Outcome is the verdict of a run that broke (NOT_OK): ABORTED when the
	// infrastructure or a limit stopped it, CRASHED when it fell over, or
	// the outcome the runner chose for its terminal result.
	Outcome Outcome `json:"outcome,omitempty"`
	// Infra says the run broke on infrastructure (a service away, a
	// checkout that failed): another attempt may pass.
	Infra bool `json:"infra,omitempty"`
	// Namespace is the formula's result namespace (dist, scratch, ...).
	Namespace string `json:"namespace,omitempty"`
	// BodhiComments are the comments the run's bodhi_comment actions made,
	// for the reporter to deliver.
	BodhiComments []BodhiComment `json:"bodhi_comments,omitempty"`
	Extra         Extra          `json:"-"`
}

// NumResults is how many results the execution has, in Results or in
// ResultsFile.
func (e Execution) NumResults() int {
	if e.ResultsFile != "" {
		return e.ResultCount
	}
	return len(e.Results)
}

// Result is one verdict on one item (design §2.7). Keys other than the named
// ones are the result's keyvals and end up in ResultsDB data.
type Result struct {
	Item      string  `json:"item"`
	Type      string  `json:"type"`
	CheckName string  `json:"checkname,omitempty"`
	Outcome   Outcome `json:"outcome"`
	Note      string  `json:"note,omitempty"`
	Arch      Arches  `json:"arch,omitzero"`
	Artifact  string  `json:"artifact,omitempty"`
	Details   any     `json:"details,omitempty"`
	Extra     Extra   `json:"-"`
}

// Execution states: where a job is between queued and its last result.
const (
	StateQueued       = "queued"        // waiting in the job queue
	StateRunning      = "running"       // a worker runs it
	StateWaitingRetry = "waiting_retry" // its run failed on infrastructure; it waits for the next attempt
	StateFinished     = "finished"      // reported: the execution ran to its end (OK or NOT_OK)
	StateCrashed      = "crashed"       // ended CRASHED: it fell over, or its workers kept dying
	StateAborted      = "aborted"       // ended ABORTED: stopped by a limit or the infrastructure
)

// ExecutionEvent is one change of an execution's state, as the trigger and
// the workers tell the central server (design §2, execution tracking).
// Events of one producer arrive in order; ID makes a resent one harmless.
type ExecutionEvent struct {
	// ID is unique per event: <producer>-<sequence>.
	ID      string    `json:"id"`
	UUID    string    `json:"uuid"`
	Attempt int       `json:"attempt"`
	State   string    `json:"state"`
	Time    time.Time `json:"time"`
	// Queued: what the job is, and where it came from.
	Item     string `json:"item,omitempty"`
	ItemType string `json:"item_type,omitempty"`
	TaskName string `json:"taskname,omitempty"`
	Arch     string `json:"arch,omitempty"`
	Priority int    `json:"priority,omitempty"`
	MsgID    string `json:"msg_id,omitempty"`
	Rule     string `json:"rule,omitempty"`
	// Running: who runs it, and the action it is in.
	Worker string `json:"worker,omitempty"`
	Action string `json:"action,omitempty"`
	// WaitingRetry: until when; Reason says why for every state that has one.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	// Finished, crashed, aborted: how it ended.
	ExecutionStatus string  `json:"execution_status,omitempty"`
	Outcome         Outcome `json:"outcome,omitempty"`
	Results         int     `json:"results,omitempty"`
	Extra           Extra   `json:"-"`
}

func (e ExecutionEvent) MarshalJSON() ([]byte, error) {
	type plain ExecutionEvent
	return marshalWithExtra(plain(e), e.Extra)
}

func (e *ExecutionEvent) UnmarshalJSON(b []byte) error {
	type plain ExecutionEvent
	*e = ExecutionEvent{}
	return unmarshalWithExtra(b, (*plain)(e), &e.Extra)
}

// TestcaseRef names a ResultsDB testcase in a post.
type TestcaseRef struct {
	Name   string `json:"name"`
	RefURL string `json:"ref_url,omitempty"`
}

// GroupRef names a ResultsDB group (one execution) in a post.
type GroupRef struct {
	UUID        string `json:"uuid"`
	RefURL      string `json:"ref_url,omitempty"`
	Description string `json:"description,omitempty"`
}

// ResultsDBPost is the body of POST /api/v2.0/results (design §2.8).
type ResultsDBPost struct {
	Outcome  Outcome        `json:"outcome"`
	Testcase TestcaseRef    `json:"testcase"`
	Groups   []GroupRef     `json:"groups,omitempty"`
	Note     string         `json:"note,omitempty"`
	RefURL   string         `json:"ref_url,omitempty"`
	Data     map[string]any `json:"data"`
	Extra    Extra          `json:"-"`
}

// BodhiComment is the body of Bodhi's POST /comments/ (design §2.9).
type BodhiComment struct {
	Update string `json:"update"`
	Text   string `json:"text"`
	Karma  int    `json:"karma"`
	Extra  Extra  `json:"-"`
}

func (m Message) MarshalJSON() ([]byte, error) {
	type plain Message
	extra := m.Extra
	if m.Headers != nil && len(m.Headers) == 0 {
		// omitempty would drop an empty headers object the input had.
		extra = Extra{"headers": map[string]any{}}
		for k, v := range m.Extra {
			extra[k] = v
		}
	}
	return marshalWithExtra(plain(m), extra)
}

func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	*m = Message{}
	return unmarshalWithExtra(b, (*plain)(m), &m.Extra)
}

func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	return marshalWithExtra(plain(j), j.Extra)
}

func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	*j = Job{}
	return unmarshalWithExtra(b, (*plain)(j), &j.Extra)
}

func (r RunnerInput) MarshalJSON() ([]byte, error) {
	type plain RunnerInput
	return marshalWithExtra(plain(r), r.Extra)
}

func (r *RunnerInput) UnmarshalJSON(b []byte) error {
	type plain RunnerInput
	*r = RunnerInput{}
	return unmarshalWithExtra(b, (*plain)(r), &r.Extra)
}

func (e Execution) MarshalJSON() ([]byte, error) {
	type plain Execution
	if e.Results == nil {
		e.Results = []Result{}
	}
	return marshalWithExtra(plain(e), e.Extra)
}

func (e *Execution) UnmarshalJSON(b []byte) error {
	type plain Execution
	*e = Execution{}
	return unmarshalWithExtra(b, (*plain)(e), &e.Extra)
}

func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return marshalWithExtra(plain(r), r.Extra)
}

func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	*r = Result{}
	return unmarshalWithExtra(b, (*plain)(r), &r.Extra)
}

func (p ResultsDBPost) MarshalJSON() ([]byte, error) {
	type plain ResultsDBPost
	if p.Data == nil {
		p.Data = map[string]any{}
	}
	return marshalWithExtra(plain(p), p.Extra)
}

func (p *ResultsDBPost) UnmarshalJSON(b []byte) error {
	type plain ResultsDBPost
	*p = ResultsDBPost{}
	return unmarshalWithExtra(b, (*plain)(p), &p.Extra)
}

func (c BodhiComment) MarshalJSON() ([]byte, error) {
	type plain BodhiComment
	return marshalWithExtra(plain(c), c.Extra)
}

func (c *BodhiComment) UnmarshalJSON(b []byte) error {
	type plain BodhiComment
	*c = BodhiComment{}
	return unmarshalWithExtra(b, (*plain)(c), &c.Extra)
}

// Arches is a result's arch: one name or a list of names. It remembers which
// form it was read in so that it is written back the same way.
type Arches struct {
	Names []string
	List  bool
}

// OneArch makes an Arches holding a single name.
func OneArch(name string) Arches { return Arches{Names: []string{name}} }

// IsZero lets omitempty drop an unset arch.
func (a Arches) IsZero() bool { return len(a.Names) == 0 && !a.List }

// String joins the names with commas.
func (a Arches) String() string {
	s := ""
	for i, n := range a.Names {
		if i > 0 {
			s += ","
		}
		s += n
	}
	return s
}

func (a Arches) MarshalJSON() ([]byte, error) {
	if !a.List && len(a.Names) == 1 {
		return json.Marshal(a.Names[0])
	}
	if a.Names == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(a.Names)
}

func (a *Arches) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Arches{Names: []string{one}}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("arch must be a string or a list of strings")
	}
	*a = Arches{Names: many, List: true}
	return nil
}
