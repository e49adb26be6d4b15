package resultsdb

import (
	"errors"
	"time"
)

// ErrNotFound is returned by a store when the named object does not exist.
var ErrNotFound = errors.New("not found")

// Testcase is one named check.
type Testcase struct {
	Name   string
	RefURL *string
}

// Group is one execution (its uuid is the job's uuid).
type Group struct {
	UUID         string
	Description  *string
	RefURL       *string
	ResultsCount int64
}

// DataPair is one key and value of a result's data; a key may repeat.
type DataPair struct {
	Key   string
	Value string
}

// Result is one stored verdict.
type Result struct {
	ID         int64
	Testcase   Testcase
	SubmitTime time.Time // UTC
	Outcome    string
	Note       *string
	RefURL     *string
	Groups     []string
	Data       []DataPair
	// Origin names the system that submitted it (see origins.go).
	Origin string
}

// NewResult is what a store needs to create a result. Optional fields that
// are nil leave the existing testcase or group values alone.
type NewResult struct {
	Outcome    string
	Testcase   TestcaseUpdate
	Groups     []GroupUpdate
	Note       *string
	RefURL     *string
	Data       []DataPair
	SubmitTime time.Time // zero: now
	// Origin is the submitting system; empty means DefaultOrigin.
	Origin string
	// Event asks for a resultsdb.result.new message through the outbox.
	Event bool
}

// TestcaseUpdate creates a testcase or updates the fields it sets.
type TestcaseUpdate struct {
	Name      string
	RefURL    *string
	SetRefURL bool
}

// GroupUpdate creates a group or updates the fields it sets.
type GroupUpdate struct {
	UUID           string
	Description    *string
	SetDescription bool
	RefURL         *string
	SetRefURL      bool
}

// Sort orders result lists.
type Sort int

const (
	SortDesc Sort = iota // by submit_time, newest first (the default)
	SortAsc
	SortNone
)

// DataFilter matches results having key with one of Values (exact) or
// matching one of the LIKE patterns (Like true; '%' and '_' are wildcards).
type DataFilter struct {
	Key    string
	Values []string
	Like   bool
}

// ResultQuery selects results. Empty fields do not filter. Testcases and
// TestcasesLike are ORed together; every other field is ANDed.
type ResultQuery struct {
	Since, Until  time.Time
	Outcomes      []string
	Groups        []string
	Testcases     []string
	TestcasesLike []string
	Origins       []string
	Data          []DataFilter
	Sort          Sort
	Offset, Limit int // Limit 0: no limit
}

// GroupQuery selects groups, newest first.
type GroupQuery struct {
	UUIDs           []string
	Descriptions    []string
	DescriptionLike []string
	Offset, Limit   int
}

// TestcaseQuery selects testcases, by name.
type TestcaseQuery struct {
	Names         []string
	NameLike      []string
	Offset, Limit int
}

// Event is one pending resultsdb.result.new message in the outbox.
type Event struct {
	ID       int64
	ResultID int64
}
