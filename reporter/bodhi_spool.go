package reporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// Bodhi comments go through the spool (comments/) always: they are
// written there before the execution is marked reported and sent from
// there, so neither a Bodhi outage nor a crash loses one. Bodhi turns
// every POST /comments/ into a new comment, so sending twice means
// commenting twice; to keep that from happening, a comment's file records
// when it was first sent (before the POST goes out), and a comment sent
// before is looked for in Bodhi's comment list before it is sent again.

// commentEntry is one Bodhi comment waiting in the spool.
type commentEntry struct {
	Comment contract.BodhiComment `json:"comment"`
	// Build is set, and Comment.Update empty, when the comment is about a
	// Koji build whose updates Bodhi could not tell when the comment was
	// made; the updates are looked up when Bodhi answers again.
	Build string `json:"build,omitempty"`
	// UUID is the execution the comment is about.
	UUID    string    `json:"uuid,omitempty"`
	Spooled time.Time `json:"spooled"`
	// Attempted is when the comment was first sent to Bodhi.
	Attempted *time.Time `json:"attempted,omitempty"`

	name string
}

// rejectedComment is a comment Bodhi refused, with its answer.
type rejectedComment struct {
	Comment  contract.BodhiComment `json:"comment"`
	Build    string                `json:"build,omitempty"`
	UUID     string                `json:"uuid,omitempty"`
	Status   int                   `json:"status"`
	Message  string                `json:"message"`
	Rejected time.Time             `json:"rejected"`
}

// clockSlack widens the look for an earlier copy of a comment in Bodhi,
// whose clock need not agree with ours.
const clockSlack = 10 * time.Minute

// commentBuild is the Koji build a comment without an update is about
// (the bodhi_comment directive leaves it in Extra "build" when Bodhi could
// not say which updates hold the build).
func commentBuild(c contract.BodhiComment) string {
	b, _ := c.Extra["build"].(string)
	return strings.TrimSpace(b)
}

// key identifies an entry's comment: the same key is the same comment.
func (e commentEntry) key() string {
	if e.Comment.Update == "" {
		return commentKey(contract.BodhiComment{Update: "build " + e.Build, Text: e.Comment.Text})
	}
	return commentKey(e.Comment)
}

// fileName is <seq>-<update or build>-<key>.json; the key ends the name so
// that a comment already waiting is found by name.
func (e commentEntry) fileName(seq uint64) string {
	label := e.Comment.Update
	if label == "" {
		label = "build-" + e.Build
	}
	if len(label) > 100 {
		label = label[:100] // both come from outside; file names are bounded
	}
	return fmt.Sprintf("%020d-%s-%s.json", seq, safeName(label), e.key()[:16])
}

// nameKey is the key part of a comment file name.
func nameKey(name string) string {
	base := strings.TrimSuffix(name, ".json")
	return base[strings.LastIndexByte(base, '-')+1:]
}

// queueComments writes an execution's comments to the spool and returns
// their file names. A comment made within the span, or already waiting,
// is not queued again. The caller holds the spool lock.
func (r *Reporter) queueComments(uuid string, cs []contract.BodhiComment) ([]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	names, err := r.spool.listIn(commentsQueue)
	if err != nil {
		return nil, err
	}
	// Another process sharing the spool may have queued since we looked.
	r.spool.seeSeq(names)
	waiting := map[string]bool{}
	for _, n := range names {
		waiting[nameKey(n)] = true
	}
	dir := filepath.Join(r.spool.dir, commentsQueue)
	now := time.Now().UTC()
	var out []string
	for _, c := range cs {
		e := commentEntry{Comment: contract.BodhiComment{Update: strings.TrimSpace(c.Update), Text: c.Text, Karma: c.Karma}, UUID: uuid, Spooled: now}
		if e.Comment.Update == "" {
			if e.Build = commentBuild(c); e.Build == "" {
				r.log.Error("Bodhi comment names no update and no build; not made", "uuid", uuid, "text", truncate(oneLine(c.Text), 200))
				continue
			}
		} else if at, ok := r.bodhi.recent(e.Comment); ok {
			r.log.Debug("Bodhi comment already made recently", "update", e.Comment.Update, "at", at)
			continue
		}
		k := e.key()[:16]
		if waiting[k] {
			r.log.Debug("Bodhi comment already waiting in the spool", "update", e.Comment.Update, "build", e.Build)
			continue
		}
		waiting[k] = true
		name := e.fileName(r.spool.nextSeq())
		if err := writeFileSync(dir, name, e); err != nil {
			return out, fmt.Errorf("Bodhi comments not kept: %w", err)
		}
		out = append(out, name)
	}
	if len(out) > 0 {
		if err := syncDir(dir); err != nil {
			return out, fmt.Errorf("Bodhi comments not kept: %w", err)
		}
	}
	return out, nil
}

// Outcomes of one comment file in a flush.
const (
	commentMade     = "made"     // Bodhi took it now
	commentSkipped  = "skipped"  // made before (within the span, or found in Bodhi)
	commentRejected = "rejected" // set aside with Bodhi's answer
	commentResolved = "resolved" // a build's comment, replaced by one per update
)

// commentFlush is what one pass over the comment queue did.
type commentFlush struct {
	outcome map[string]string // file name -> outcome
	origin  map[string]string // file made by resolving a build -> the build's file
}

// count tallies what became of the named files (those one report
// queued): comments made, rejected, and still waiting.
func (f commentFlush) count(names []string) (made, rejected, waiting int) {
	tally := func(o string) {
		switch o {
		case commentMade:
			made++
		case commentRejected:
			rejected++
		case commentSkipped:
		default:
			waiting++
		}
	}
	for _, n := range names {
		if f.outcome[n] != commentResolved {
			tally(f.outcome[n])
			continue
		}
		for m, from := range f.origin {
			if from == n {
				tally(f.outcome[m])
			}
		}
	}
	return made, rejected, waiting
}

// flushCommentsLocked sends the spooled comments, oldest first, until the
// queue is empty or Bodhi is away; it returns how many files are left when
// it stops early. The caller holds the spool lock.
func (r *Reporter) flushCommentsLocked(ctx context.Context) (commentFlush, int, error) {
	f := commentFlush{outcome: map[string]string{}, origin: map[string]string{}}
	b := r.bodhi
	made := 0
	defer func() {
		if made > 0 {
			r.log.Info("spooled Bodhi comments sent", "comments", made)
		}
	}()
	for {
		names, err := r.spool.listIn(commentsQueue)
		if err != nil {
			return f, 0, err
		}
		relist := false
		for i, name := range names {
			if f.outcome[name] != "" {
				continue // settled in this pass
			}
			left := len(names) - i
			var e commentEntry
			err := r.spool.loadIn(commentsQueue, name, &e)
			if errors.Is(err, os.ErrNotExist) {
				continue // sent by another process meanwhile
			}
			if err == nil && e.Comment.Update == "" && e.Build == "" {
				err = errors.New("names no update and no build")
			}
			if err != nil {
				r.log.Error("unreadable Bodhi comment in the spool set aside", "file", name, "err", err)
				if err := r.spool.moveUnreadable(commentsQueue, commentsRejected, name, err); err != nil {
					return f, left, err
				}
				continue
			}
			e.name = name
			if e.Comment.Update == "" {
				err = r.resolveBuild(ctx, e, f)
			} else {
				var outcome string
				outcome, err = r.sendQueuedComment(ctx, e)
				if err == nil {
					f.outcome[name] = outcome
					if outcome == commentMade {
						made++
					}
				}
			}
			var rej *CommentRejectedError
			switch {
			case err == nil:
			case errors.As(err, &rej):
				r.log.Error("Bodhi rejected a comment; kept in the spool's comments-rejected folder",
					"update", rej.Update, "status", rej.Status, "reason", rej.Message, "uuid", e.UUID, "file", name)
				x := rejectedComment{Comment: e.Comment, Build: e.Build, UUID: e.UUID, Status: rej.Status, Message: rej.Message, Rejected: time.Now().UTC()}
				if err := r.spool.setAside(commentsQueue, commentsRejected, name, x); err != nil {
					return f, left, err
				}
				f.outcome[name] = commentRejected
			case isBodhiUnavailable(err):
				b.wentDown(err)
				return f, left, err
			default:
				return f, left, err
			}
			if f.outcome[name] == commentResolved {
				// Its comments took its place in the queue: read it again.
				relist = true
				break
			}
		}
		if !relist {
			return f, 0, nil
		}
	}
}

// sendQueuedComment delivers one queued comment, keeping the span rule as
// it stands now, and drops its file once Bodhi has it.
func (r *Reporter) sendQueuedComment(ctx context.Context, e commentEntry) (string, error) {
	b, c := r.bodhi, e.Comment
	if at, ok := b.recent(c); ok {
		r.log.Debug("Bodhi comment already made recently", "update", c.Update, "at", at)
		return commentSkipped, r.spool.removeIn(commentsQueue, e.name)
	}
	if e.Attempted != nil {
		// Its earlier POST may have been stored without the answer (or our
		// record of it) surviving. Within the span an identical comment
		// would not be made anyway, so look that far back too.
		since := e.Attempted.Add(-clockSlack)
		if s := b.now().Add(-b.span); s.Before(since) {
			since = s
		}
		found, err := b.posted(ctx, c, since)
		var rej *CommentRejectedError
		switch {
		case errors.As(err, &rej):
			// Bodhi refuses the listing; the POST's own answer decides.
			r.log.Warn("Bodhi did not list the update's comments; sending a comment that may have been made already",
				"update", c.Update, "err", err)
		case err != nil:
			return "", err
		case found:
			r.log.Info("Bodhi already has the comment from an earlier attempt; not sent again", "update", c.Update, "attempted", *e.Attempted)
			if err := b.remember(c, *e.Attempted); err != nil {
				r.log.Error("Bodhi comment history not saved", "err", err)
			}
			return commentSkipped, r.spool.removeIn(commentsQueue, e.name)
		}
	} else {
		// Recorded before the POST leaves: if its answer is lost, or we
		// stop before the file is gone, the next try looks in Bodhi first.
		now := time.Now().UTC()
		e.Attempted = &now
		if err := r.spool.put(commentsQueue, e.name, e); err != nil {
			return "", err
		}
	}
	if err := b.send(ctx, c); err != nil {
		return "", err
	}
	b.cameBack()
	if b.afterPost != nil {
		if err := b.afterPost(); err != nil {
			return "", err
		}
	}
	if err := b.remember(c, b.now()); err != nil {
		r.log.Error("Bodhi comment history not saved", "err", err)
	}
	return commentMade, r.spool.removeIn(commentsQueue, e.name)
}

// resolveBuild replaces a build's comment by one comment per update that
// holds the build, in the same place of the queue.
func (r *Reporter) resolveBuild(ctx context.Context, e commentEntry, f commentFlush) error {
	aliases, err := r.bodhi.updatesFor(ctx, e.Build)
	if err != nil {
		return err
	}
	seq, _ := nameSeq(e.name)
	dir := filepath.Join(r.spool.dir, commentsQueue)
	for _, a := range aliases {
		ne := commentEntry{Comment: contract.BodhiComment{Update: a, Text: e.Comment.Text, Karma: e.Comment.Karma}, UUID: e.UUID, Spooled: e.Spooled}
		name := ne.fileName(seq)
		f.origin[name] = e.name
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			continue // written before a crash; it may carry its attempt
		}
		if err := writeFileSync(dir, name, ne); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if len(aliases) == 0 {
		r.log.Info("Bodhi comment dropped: no update holds the build", "build", e.Build, "uuid", e.UUID)
	} else {
		r.log.Debug("Bodhi comment about a build goes to its updates", "build", e.Build, "updates", aliases)
	}
	f.outcome[e.name] = commentResolved
	return r.spool.removeIn(commentsQueue, e.name)
}
