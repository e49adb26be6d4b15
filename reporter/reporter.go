// Package reporter delivers results: every ResultsDB post exactly once, to
// ResultsDB when it answers, else to a durable on-disk spool sent later in
// order; and Bodhi comments the same way, in a queue of their own. What the
// posts and comments say comes from results; the reporter only sends. It
// imports results, bodhi, httpclient, atomicfile, contract and config.
package reporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// Options configure a Reporter.
type Options struct {
	// ResultsDBURL is the ResultsDB API, with or without "/api/v2.0".
	ResultsDBURL string
	// SpoolDir keeps what could not be delivered yet, what was rejected,
	// and which executions were reported.
	SpoolDir string
	// ArtifactsURL is the public URL of the artifacts folder; each result
	// links to <ArtifactsURL>/<uuid>/<artifact>.
	ArtifactsURL string
	// ExecDBURL makes each group's ref_url <ExecDBURL>/jobs/<uuid>; without
	// it the group links to the execution's artifacts.
	ExecDBURL string
	// TestcaseURL makes each testcase's ref_url <TestcaseURL>/<name>.
	TestcaseURL string
	// Token is sent to ResultsDB as a bearer token.
	Token string
	Bodhi BodhiOptions
	Log   *slog.Logger
	// HTTPClient is the underlying HTTP client; nil means a fresh one.
	HTTPClient *http.Client
	// RetryMax, RetryWaitMin and RetryWaitMax bound the retries of one
	// request before its post goes to the spool (defaults 4, 500 ms, 30 s).
	// A refused connection is not retried: the post is spooled at once.
	RetryMax     int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// Recheck: for this long after ResultsDB (or Bodhi) failed, Report
	// spools at once instead of waiting through retries again (default
	// 10 s); Run and Flush keep trying.
	Recheck time.Duration
}

// Reporter delivers results to ResultsDB exactly once, through a durable
// spool when ResultsDB is away, and Bodhi comments through the same spool
// (in a queue of their own) when Bodhi is. One Reporter per spool folder.
type Reporter struct {
	opts   Options
	log    *slog.Logger
	client *ResultsDBClient
	spool  *spool
	bodhi  *commenter

	// mu makes deliveries one at a time, which keeps the spool in order.
	mu sync.Mutex
	// down remembers that the last attempt found ResultsDB away, so that
	// the outage is logged once and jobs do not each wait through retries.
	down     bool
	lastFail time.Time
	// lastStored is when ResultsDB last took a post: a 500 on one post
	// after that is about the post, not an outage.
	lastStored time.Time
}

// New makes a Reporter. It needs a spool folder; without a ResultsDB URL
// it can only compute posts (Posts) and Report fails.
func New(opts Options) (*Reporter, error) {
	r := &Reporter{opts: opts, log: opts.Log}
	if r.opts.Recheck <= 0 {
		r.opts.Recheck = 10 * time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if opts.ResultsDBURL != "" {
		c, err := NewResultsDBClient(opts.ResultsDBURL, ClientOptions{
			Token: opts.Token, HTTPClient: opts.HTTPClient, RetryMax: opts.RetryMax,
			RetryWaitMin: opts.RetryWaitMin, RetryWaitMax: opts.RetryWaitMax, Log: r.log,
		})
		if err != nil {
			return nil, err
		}
		r.client = c
	}
	if opts.SpoolDir != "" {
		s, err := openSpool(opts.SpoolDir)
		if err != nil {
			return nil, err
		}
		r.spool = s
	}
	if opts.Bodhi.URL != "" {
		// Without a spool folder (a dry run) the comment history lives in
		// memory only.
		history := ""
		if opts.SpoolDir != "" {
			history = filepath.Join(opts.SpoolDir, "bodhi-comments.json")
		}
		b, err := newCommenter(opts.Bodhi, history, ClientOptions{HTTPClient: opts.HTTPClient, RetryMax: opts.RetryMax,
			RetryWaitMin: opts.RetryWaitMin, RetryWaitMax: opts.RetryWaitMax, Log: r.log}, r.log)
		if err != nil {
			return nil, err
		}
		r.bodhi = b
	}
	return r, nil
}

// Comments lists the Bodhi comments the posts call for (none when Bodhi is
// not configured).
func (r *Reporter) Comments(posts []contract.ResultsDBPost) []contract.BodhiComment {
	if r.bodhi == nil {
		return nil
	}
	return results.Comments(posts, r.bodhi.on)
}

// ExecutionComments lists the Bodhi comments an execution should lead to
// (none when Bodhi is not configured): those its bodhi_comment actions made
// (exec.BodhiComments), and those its posts call for on the other updates.
// A formula that comments on an update has said what to say there, so the
// update does not get a second comment about the same results.
func (r *Reporter) ExecutionComments(exec contract.Execution, posts []contract.ResultsDBPost) []contract.BodhiComment {
	if r.bodhi == nil {
		return nil
	}
	asked := ActionComments(exec)
	done := map[string]bool{}
	for _, c := range asked {
		if c.Update != "" {
			done[c.Update] = true
		}
	}
	out := asked
	for _, c := range r.Comments(posts) {
		if !done[c.Update] {
			out = append(out, c)
		}
	}
	return out
}

// ActionComments are the comments bodhi_comment actions made, as far as
// they can be sent: each names an update, or a Koji build (Extra "build")
// whose updates the reporter finds when it sends it, and has a text.
func ActionComments(exec contract.Execution) []contract.BodhiComment {
	var out []contract.BodhiComment
	for _, c := range exec.BodhiComments {
		if (c.Update != "" || commentBuild(c) != "") && c.Text != "" {
			out = append(out, c)
		}
	}
	return out
}

// Posts turns an execution's results into ResultsDB posts without sending
// anything (the dry run); see results.Posts.
func (r *Reporter) Posts(exec contract.Execution) ([]contract.ResultsDBPost, error) {
	return results.Posts(exec, r.links())
}

// Poster makes the posts of exec one result at a time, as Posts would.
func (r *Reporter) Poster(exec contract.Execution) *results.Poster {
	return results.NewPoster(exec, r.links())
}

func (r *Reporter) links() results.Links {
	return results.Links{ArtifactsURL: r.opts.ArtifactsURL, ExecDBURL: r.opts.ExecDBURL, TestcaseURL: r.opts.TestcaseURL}
}

// Delivery says what Report did with each post.
type Delivery struct {
	Stored   int `json:"stored"`   // sent to ResultsDB now
	Present  int `json:"present"`  // found already stored (an earlier, interrupted report)
	Spooled  int `json:"spooled"`  // kept on disk for later
	Rejected int `json:"rejected"` // refused by ResultsDB, kept in the rejected folder
	Comments int `json:"comments"` // Bodhi comments made
	// CommentsSpooled are Bodhi comments waiting in the spool for Bodhi;
	// CommentsRejected were refused by Bodhi and kept in comments-rejected.
	CommentsSpooled  int `json:"comments_spooled"`
	CommentsRejected int `json:"comments_rejected"`
	// Already is set when the execution had been reported before.
	Already bool `json:"already_reported"`
}

// Report delivers an execution's results. It returns nil only when every
// post is stored in ResultsDB, durably spooled, or refused by ResultsDB
// (a 4xx; the post is kept in the rejected folder with the server's
// message and logged, as sending it again cannot help). Reporting the same
// execution twice stores nothing twice.
func (r *Reporter) Report(ctx context.Context, exec contract.Execution) error {
	_, err := r.Deliver(ctx, exec)
	return err
}

// Deliver is Report that also says what happened.
func (r *Reporter) Deliver(ctx context.Context, exec contract.Execution) (Delivery, error) {
	// A result that cannot be posted fails the whole report before
	// anything is sent. Results are read twice, one at a time, rather than
	// held: an execution's results may be a file of millions.
	check := r.Poster(exec)
	if err := results.EachToReport(exec, func(res contract.Result) error { _, err := check.Post(res); return err }); err != nil {
		return Delivery{}, err
	}
	s, err := r.Start(ctx, exec)
	if err != nil {
		return Delivery{}, err
	}
	if err := results.EachWithoutDetails(exec, s.Add); err != nil {
		s.Abort()
		return s.d, err
	}
	return s.Finish()
}

// finish marks the execution reported and makes the Bodhi comments. The
// comments go to the spool first: once the execution is marked reported,
// a report of it again makes none, so they must be durable by then.
func (r *Reporter) finish(ctx context.Context, exec contract.Execution, posts []contract.ResultsDBPost, total int, d *Delivery) error {
	var queued []string
	if r.bodhi != nil {
		var err error
		if queued, err = r.queueComments(exec.UUID, r.ExecutionComments(exec, posts)); err != nil {
			return err
		}
	}
	// The marker answers a second report of the execution without asking
	// ResultsDB. Where ResultsDB holds every post and no comment was
	// queued, ResultsDB answers that itself (a second report finds each
	// post present and stores nothing), so the marker and its flush to the
	// disk are left out: they were a tenth of a worker's CPU per job.
	if total == 0 || d.Stored+d.Present < total || len(queued) > 0 {
		if err := r.spool.markReported(exec.UUID, total); err != nil {
			return err
		}
	}
	d.CommentsSpooled = len(queued)
	if len(queued) > 0 && !r.bodhi.resting(r.opts.Recheck) {
		// Older spooled comments go first: comments arrive in order.
		f, _, err := r.flushCommentsLocked(ctx)
		if err != nil && !isBodhiUnavailable(err) {
			r.log.Error("sending Bodhi comments; they stay in the spool", "uuid", exec.UUID, "err", err)
		}
		d.Comments, d.CommentsRejected, d.CommentsSpooled = f.count(queued)
	}
	r.log.Info("execution reported", "uuid", exec.UUID, "stored", d.Stored, "present", d.Present, "spooled", d.Spooled, "rejected", d.Rejected,
		"comments", d.Comments, "comments_spooled", d.CommentsSpooled, "comments_rejected", d.CommentsRejected)
	return nil
}

func (r *Reporter) spoolEntries(entries []spoolEntry, cause error) error {
	now := time.Now().UTC()
	for i := range entries {
		entries[i].Spooled = now
		if cause != nil {
			entries[i].LastError = cause.Error()
		}
	}
	if err := r.spool.add(entries); err != nil {
		return fmt.Errorf("ResultsDB unavailable and the spool failed, results not kept: %w", err)
	}
	return nil
}

func (r *Reporter) logRejected(e spoolEntry, rej *RejectedError) {
	r.log.Error("ResultsDB rejected a result; kept in the spool's rejected folder",
		"uuid", e.UUID, "index", e.Index, "testcase", e.Post.Testcase.Name, "status", rej.Status, "message", rej.Message)
}

func (r *Reporter) wentDown(err error) {
	if !r.down {
		r.log.Warn("ResultsDB unavailable; results wait in the spool until it is back", "err", err)
	}
	r.down = true
	r.lastFail = time.Now()
}

func (r *Reporter) cameBack() {
	if r.down {
		r.log.Info("ResultsDB reachable again")
	}
	r.down = false
}

// Stored says whether results of the execution are stored: marked reported
// in this spool (waiting in it, or with comments queued), or found in
// ResultsDB (posted by this reporter or an earlier one, maybe on another
// host). An error means it cannot be told now (ResultsDB unavailable).
func (r *Reporter) Stored(ctx context.Context, uuid string) (bool, error) {
	if r.client == nil || r.spool == nil {
		return false, errors.New("reporter has no ResultsDB URL or no spool folder")
	}
	if r.spool.reported(uuid) {
		return true, nil
	}
	rs, err := r.client.GroupResults(ctx, uuid)
	if err != nil {
		return false, err
	}
	return len(rs) > 0, nil
}

// Flush sends spooled posts, oldest first, until their queue is empty or
// ResultsDB fails again, and spooled Bodhi comments, oldest first, until
// theirs is empty or Bodhi fails again; one service being away does not
// hold up the other's queue. It returns nil when the spool is empty.
func (r *Reporter) Flush(ctx context.Context) error {
	posts, comments := r.flush(ctx)
	return errors.Join(posts, comments)
}

// flush is Flush with the posts' and the comments' errors apart.
func (r *Reporter) flush(ctx context.Context) (posts, comments error) {
	if r.client == nil || r.spool == nil {
		return errors.New("reporter has no ResultsDB URL or no spool folder"), nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := r.spool.lock(ctx)
	if err != nil {
		return err, nil
	}
	defer unlock()
	_, posts = r.flushLocked(ctx)
	if r.bodhi != nil {
		if _, _, err := r.flushCommentsLocked(ctx); err != nil {
			comments = fmt.Errorf("Bodhi comments stay in the spool: %w", err)
		}
	}
	return posts, comments
}

// Spooled is the number of posts waiting in the spool.
func (r *Reporter) Spooled() (int, error) {
	if r.spool == nil {
		return 0, nil
	}
	return r.spool.queued()
}

// Pending counts what the spool holds.
type Pending struct {
	Posts            int `json:"posts"`             // waiting for ResultsDB
	RejectedPosts    int `json:"rejected_posts"`    // refused by ResultsDB (rejected/)
	Comments         int `json:"comments"`          // waiting for Bodhi
	RejectedComments int `json:"rejected_comments"` // refused by Bodhi (comments-rejected/)
}

// Pending says how many posts and Bodhi comments wait in the spool and how
// many were set aside as refused.
func (r *Reporter) Pending() (Pending, error) {
	var p Pending
	if r.spool == nil {
		return p, nil
	}
	var errs [4]error
	p.Posts, errs[0] = r.spool.count(postsQueue)
	p.RejectedPosts, errs[1] = r.spool.count("rejected")
	p.Comments, errs[2] = r.spool.count(commentsQueue)
	p.RejectedComments, errs[3] = r.spool.count(commentsRejected)
	return p, errors.Join(errs[:]...)
}

func (r *Reporter) flushLocked(ctx context.Context) (int, error) {
	names, err := r.spool.list()
	if err != nil {
		return 0, err
	}
	// A spooled post may have reached ResultsDB before its answer was lost,
	// so each group is checked once before its posts are sent again.
	groups := map[string]map[uint64]int{}
	failedBefore := false // the post before answered 500 too
	for i, name := range names {
		e, err := r.spool.load(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // sent by another process meanwhile
		}
		if err != nil {
			r.log.Error("unreadable spool entry set aside", "file", name, "err", err)
			if err := r.spool.rejectUnreadable(name, err); err != nil {
				return len(names) - i, err
			}
			continue
		}
		counts, ok := groups[e.UUID]
		if !ok {
			existing, err := r.client.GroupResults(ctx, e.UUID)
			if err != nil {
				r.wentDown(err)
				return len(names) - i, err
			}
			counts = storedCounts(existing)
			groups[e.UUID] = counts
		}
		fp := postFingerprint(e.Post)
		if counts[fp] > e.Prior {
			if err := r.spool.remove(name); err != nil {
				return len(names) - i, err
			}
			continue
		}
		err = r.send(ctx, e, counts)
		// One 500 may be about the post; a second in a row is an outage.
		outage := isUnavailable(err) && (!serverError(err) || failedBefore)
		failedBefore = serverError(err)
		var rej *RejectedError
		switch {
		case err == nil:
			if err := r.spool.remove(name); err != nil {
				return len(names) - i, err
			}
		case errors.As(err, &rej):
			r.logRejected(e, rej)
			if err := r.spool.reject(e, rej); err != nil {
				return len(names) - i, err
			}
		case !outage && serverError(err):
			// The others go on; this one waits, or is set aside when
			// ResultsDB keeps failing on it alone.
			if err := r.contentFailure(e, err); err != nil {
				return len(names) - i, err
			}
		default:
			r.wentDown(err)
			return len(names) - i, err
		}
	}
	if len(names) > 0 {
		r.log.Info("spool sent", "posts", len(names))
	}
	return 0, nil
}

// contentFailures is how often ResultsDB may answer 500 to one post, each
// time after it took another post, before the post is set aside as one it
// cannot store: a bad post must not hold up the others for ever, and an
// outage must not set good posts aside.
const contentFailures = 3

// serverError tells a 500 answer: ResultsDB itself failed, which may be an
// outage (its database is down) or this very post (content it cannot
// store). 502, 503 and 504 are the infrastructure's.
func serverError(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u) && u.Status == http.StatusInternalServerError
}

// contentFailure records a 500 on a spooled post. It counts only when
// ResultsDB took a post since the last one on this post (the first: within
// a minute); after
// contentFailures of them the post is set aside in the rejected folder with
// ResultsDB's answer, as a refused one is.
func (r *Reporter) contentFailure(e spoolEntry, err error) error {
	now := time.Now().UTC()
	since := now.Add(-time.Minute)
	if e.LastFailure != nil {
		since = *e.LastFailure
	}
	if r.lastStored.After(since) {
		e.Failures++
	}
	e.LastFailure, e.LastError = &now, err.Error()
	if e.Failures >= contentFailures {
		rej := &RejectedError{Status: http.StatusInternalServerError, Message: fmt.Sprintf(
			"ResultsDB failed on this post %d times while it took others; set aside so that the others go on (last: %s)", e.Failures, err)}
		r.logRejected(e, rej)
		return r.spool.reject(e, rej)
	}
	r.log.Warn("ResultsDB failed on a post; it waits in the spool while the others go on", "uuid", e.UUID, "index", e.Index, "failures", e.Failures, "err", err)
	return r.spool.put(postsQueue, e.name, e)
}

// send posts one entry. counts holds, per fingerprint, how many of the
// group's results ResultsDB is known to hold; send keeps it up to date.
// When the outcome of a post is unclear (the request went out, no good
// answer came back) it looks in ResultsDB before sending again, so that a
// retry never stores a result twice.
func (r *Reporter) send(ctx context.Context, e spoolEntry, counts map[uint64]int) error {
	fp := postFingerprint(e.Post)
	for attempt := 0; ; attempt++ {
		err := r.client.PostResult(ctx, e.Post)
		if err == nil {
			counts[fp]++
			r.lastStored = time.Now().UTC()
			r.cameBack()
			return nil
		}
		var u *UnavailableError
		if !errors.As(err, &u) || !u.Ambiguous || attempt >= r.client.retryMax || ctx.Err() != nil {
			return err
		}
		existing, gerr := r.client.GroupResults(ctx, e.UUID)
		if gerr != nil {
			return err
		}
		n := 0
		for _, s := range existing {
			if storedFingerprint(s) == fp {
				n++
			}
		}
		if n > e.Prior {
			counts[fp] = n
			r.cameBack()
			return nil
		}
		wait := min(r.client.waitMin<<attempt, r.client.waitMax)
		r.log.Warn("ResultsDB did not confirm a result; sending it again", "uuid", e.UUID, "index", e.Index, "err", err, "wait", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Run sends the spool (posts and Bodhi comments) every interval until ctx
// ends.
func (r *Reporter) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// An outage is logged once where it is noticed; other failures
		// each time.
		posts, comments := r.flush(ctx)
		if posts != nil && !isUnavailable(posts) {
			r.log.Error("sending the spool", "err", posts)
		}
		if comments != nil && !isBodhiUnavailable(comments) {
			r.log.Error("sending the spooled Bodhi comments", "err", comments)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
