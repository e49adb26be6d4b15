package directives

import (
	"sync"

	"github.com/taskotron-go/taskotron/contract"
)

// Bodhi comments a run's bodhi_comment actions produced, kept per Env until
// the runner takes them for the reporter. (Env's own fields belong to
// directive.go; this side table keeps the two files apart.)
var (
	commentsMu sync.Mutex
	comments   = map[*Env][]contract.BodhiComment{}
)

// AddComments hands Bodhi comments to the reporter at the end of the run.
func (e *Env) AddComments(cs []contract.BodhiComment) {
	commentsMu.Lock()
	defer commentsMu.Unlock()
	comments[e] = append(comments[e], cs...)
}

// Comments returns the comments added so far.
func (e *Env) Comments() []contract.BodhiComment {
	commentsMu.Lock()
	defer commentsMu.Unlock()
	return append([]contract.BodhiComment(nil), comments[e]...)
}

// TakeComments returns the comments added so far and forgets them; the
// runner calls it once at the end of a run.
func (e *Env) TakeComments() []contract.BodhiComment {
	commentsMu.Lock()
	defer commentsMu.Unlock()
	cs := comments[e]
	delete(comments, e)
	return cs
}
