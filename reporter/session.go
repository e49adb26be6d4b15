package reporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// Session delivers one execution's results as they come (task output read
// as a stream), in constant memory: results are posted postBatch at a time
// (one at a time where ResultsDB takes no batches), or spooled when
// ResultsDB is away. Start holds the spool
// until Finish or Abort, so that results arrive in order.
type Session struct {
	r      *Reporter
	ctx    context.Context
	exec   contract.Execution
	poster *results.Poster
	unlock func()
	d      Delivery
	done   bool

	// spooling, once ResultsDB is away: the rest go to the spool, batched.
	spooling bool
	cause    error
	pending  []spoolEntry
	// sending are the results waiting to go to ResultsDB in one batch;
	// inflight, the batch posted before them, not yet answered.
	sending  []spoolEntry
	inflight *inflightBatch
	// spare and sparePosts are a settled batch's slices, to be filled
	// again: a new pair for every batch was a tenth of what a large report
	// allocated.
	spare      []spoolEntry
	sparePosts []contract.ResultsDBPost
	// counts holds, per fingerprint, how many of the group's results
	// ResultsDB held when last asked (at the start, and after an answer
	// was lost): what this session stores since need not be counted, as
	// a result's Prior counts its own earlier ones. seen holds how many of
	// each this session met so far (Prior).
	counts       map[uint64]int
	seen         map[uint64]int
	index        int
	failedBefore bool
	// commentable are the posts that may call for a Bodhi comment.
	commentable []contract.ResultsDBPost
}

// Start begins delivering exec's results (exec.Results is not read: Add
// them). It sends what the spool held first.
func (r *Reporter) Start(ctx context.Context, exec contract.Execution) (*Session, error) {
	if r.client == nil || r.spool == nil {
		return nil, errors.New("reporter has no ResultsDB URL or no spool folder: it can only compute posts")
	}
	if exec.UUID == "" {
		return nil, fmt.Errorf("execution has no uuid: cannot group its results")
	}
	r.mu.Lock()
	unlock, err := r.spool.lock(ctx)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	s := &Session{r: r, ctx: ctx, exec: exec, poster: results.NewPoster(exec, r.links()), counts: map[uint64]int{}, seen: map[uint64]int{},
		unlock: func() { unlock(); r.mu.Unlock() }}
	if r.spool.reported(exec.UUID) {
		r.log.Debug("execution already reported", "uuid", exec.UUID)
		s.d.Already = true
		return s, nil
	}
	if r.down && time.Since(r.lastFail) < r.opts.Recheck {
		s.spool(errors.New("ResultsDB was unavailable moments ago"))
		return s, nil
	}
	// Older spooled posts go first: results arrive in order.
	remaining, ferr := r.flushLocked(ctx)
	if ferr != nil && !isUnavailable(ferr) {
		s.unlock()
		return nil, ferr
	}
	if remaining > 0 {
		s.spool(ferr)
		return s, nil
	}
	// What an interrupted earlier report (maybe on another host) stored.
	existing, err := r.client.GroupResults(ctx, exec.UUID)
	if err != nil {
		if !isUnavailable(err) {
			s.unlock()
			return nil, err
		}
		r.wentDown(err)
		s.spool(err)
		return s, nil
	}
	s.counts = storedCounts(existing)
	return s, nil
}

// spool turns the session to spooling the rest.
func (s *Session) spool(cause error) {
	s.spooling, s.cause = true, cause
}

// spoolBatch is how many spooled results are written together.
const spoolBatch = 256

func (s *Session) flushPending() error {
	if len(s.pending) == 0 {
		return nil
	}
	if err := s.r.spoolEntries(s.pending, s.cause); err != nil {
		return err
	}
	s.d.Spooled += len(s.pending)
	s.pending = s.pending[:0]
	return nil
}

// Add delivers one result. Its error means the result is lost (the spool
// failed, or the post cannot be made): Abort then.
func (s *Session) Add(res contract.Result) error {
	if s.d.Already {
		return nil
	}
	p, err := s.poster.Post(res)
	if err != nil {
		return err
	}
	return s.AddPost(p)
}

// AddPost is Add for a result already made into its post, by a Poster of
// the same execution (Reporter.Poster): a caller that needs the post
// itself (for the Bodhi comments it makes) does not make it twice.
func (s *Session) AddPost(p contract.ResultsDBPost) error {
	if s.d.Already {
		return nil
	}
	fp := postFingerprint(p)
	e := spoolEntry{UUID: s.exec.UUID, Index: s.index, Prior: s.seen[fp], Post: p}
	s.index++
	s.seen[fp]++
	if s.r.bodhi != nil && s.r.bodhi.on[p.Outcome] {
		s.commentable = append(s.commentable, p)
	}
	if s.spooling {
		return s.queue(e)
	}
	if s.counts[fp] > e.Prior {
		s.d.Present++
		return nil
	}
	if s.sending = append(s.sending, e); len(s.sending) >= postBatch {
		return s.sendBatch()
	}
	return nil
}

// queue puts a result in the spool, batched.
func (s *Session) queue(e spoolEntry) error {
	if s.pending = append(s.pending, e); len(s.pending) >= spoolBatch {
		return s.flushPending()
	}
	return nil
}

// postBatch is how many results go to ResultsDB in one request where it
// takes batches: a round trip and a commit per 500 results rather than per
// result, half what our ResultsDB takes in one (MaxBatchResults), and a
// few hundred kilobytes in memory and in a request. One batch is in flight
// at a time, so the round trip is paid per batch: 500 rather than 100 took
// a 100 MB TAP stream's report from about 0.7 s to 0.45 s (RuntaskTAP100MB).
const postBatch = 500

// sendBatch posts the results waiting to be sent, together where ResultsDB
// takes batches. A batch is posted while the next one fills (ResultsDB
// stores one while the task's output is read for the next), and settled
// before the next is sent, so results still arrive in order. Where
// ResultsDB takes no batches, they go one at a time.
func (s *Session) sendBatch() error {
	if err := s.settle(); err != nil {
		return err
	}
	batch := s.sending
	s.sending, s.spare = s.spare, nil
	if s.sending == nil {
		s.sending = make([]spoolEntry, 0, postBatch)
	}
	if len(batch) < 2 || s.spooling || s.r.client.noBatch.Load() {
		err := s.deliverEach(batch)
		s.recycle(batch, nil)
		return err
	}
	posts := s.sparePosts[:0]
	s.sparePosts = nil
	for _, e := range batch {
		posts = append(posts, e.Post)
	}
	done := make(chan error, 1)
	go func() { done <- s.r.client.PostResults(s.ctx, posts) }()
	s.inflight = &inflightBatch{batch: batch, posts: posts, done: done}
	return nil
}

// recycle keeps a settled batch's slices, emptied, for the next batch.
func (s *Session) recycle(batch []spoolEntry, posts []contract.ResultsDBPost) {
	clear(batch)
	s.spare = batch[:0]
	if posts != nil {
		clear(posts)
		s.sparePosts = posts[:0]
	}
}

// inflightBatch is a batch posted and not yet answered.
type inflightBatch struct {
	batch []spoolEntry
	posts []contract.ResultsDBPost // the batch's posts, as sent
	done  chan error
}

// settle waits for the batch in flight and acts on ResultsDB's answer.
// Where it took none (ResultsDB 2.2), or refused the batch (all or none:
// one bad result refuses the others), or failed on it, the results go one
// at a time, so that each gets its own answer as it would alone.
func (s *Session) settle() error {
	f := s.inflight
	if f == nil {
		return nil
	}
	s.inflight = nil
	err := <-f.done
	defer s.recycle(f.batch, f.posts) // once its results are settled, each one
	batch := f.batch
	var u *UnavailableError
	switch {
	case err == nil:
		s.d.Stored += len(batch)
		s.failedBefore = false
		s.r.lastStored = time.Now().UTC()
		s.r.cameBack()
		return nil
	case errors.As(err, &u) && u.Ambiguous:
		// The batch may be stored: what ResultsDB holds says so.
		existing, gerr := s.r.client.GroupResults(s.ctx, s.exec.UUID)
		if gerr != nil {
			s.r.wentDown(gerr)
			s.spool(err)
			break
		}
		s.counts = storedCounts(existing)
		rest := batch[:0:0]
		for _, e := range batch {
			if s.counts[postFingerprint(e.Post)] > e.Prior {
				s.d.Stored++
			} else {
				rest = append(rest, e)
			}
		}
		batch = rest
	case isUnavailable(err) && !serverError(err):
		s.r.wentDown(err)
		s.spool(err)
	}
	return s.deliverEach(batch)
}

// deliverEach delivers the results one at a time.
func (s *Session) deliverEach(batch []spoolEntry) error {
	for _, e := range batch {
		if err := s.deliver(e); err != nil {
			return err
		}
	}
	return nil
}

// deliver posts one result, or spools it.
func (s *Session) deliver(e spoolEntry) error {
	if s.spooling {
		return s.queue(e)
	}
	err := s.r.send(s.ctx, e, s.counts)
	// One 500 may be about the post; a second in a row is an outage.
	outage := isUnavailable(err) && (!serverError(err) || s.failedBefore)
	s.failedBefore = serverError(err)
	var rej *RejectedError
	switch {
	case err == nil:
		s.d.Stored++
	case errors.As(err, &rej):
		s.r.logRejected(e, rej)
		if err := s.r.spool.reject(e, rej); err != nil {
			return err
		}
		s.d.Rejected++
	case outage:
		s.r.wentDown(err)
		s.spool(err)
		s.pending = append(s.pending, e)
	case serverError(err):
		// Maybe this post, maybe ResultsDB: the post waits in the spool
		// and the others go on; the next ones tell (see contentFailure).
		if err := s.r.spoolEntries([]spoolEntry{e}, err); err != nil {
			return err
		}
		s.d.Spooled++
	default:
		return err
	}
	return nil
}

// Finish delivers the terminal result of an execution that ended NOT_OK
// without any, marks the execution reported, makes its Bodhi comments and
// releases the spool.
func (s *Session) Finish() (Delivery, error) {
	if s.done {
		return s.d, errors.New("report session already finished")
	}
	defer s.Abort()
	if s.d.Already {
		return s.d, nil
	}
	if s.index == 0 {
		if res, ok, err := results.Terminal(s.exec); err != nil {
			return s.d, err
		} else if ok {
			if err := s.Add(res); err != nil {
				return s.d, err
			}
		}
	}
	if err := s.sendBatch(); err != nil {
		return s.d, err
	}
	if err := s.settle(); err != nil {
		return s.d, err
	}
	if err := s.flushPending(); err != nil {
		return s.d, err
	}
	return s.d, s.r.finish(s.ctx, s.exec, s.commentable, s.index, &s.d)
}

// Abort releases the spool without marking the execution reported: what
// was delivered stays delivered, and a report of it again does the rest.
func (s *Session) Abort() {
	if !s.done {
		s.done = true
		if s.inflight != nil {
			// Not a post left running past the session's end.
			<-s.inflight.done
			s.inflight = nil
		}
		s.unlock()
	}
}
