package reporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/atomicfile"
	"github.com/taskotron-go/taskotron/contract"
)

// spool keeps posts on disk until ResultsDB takes them, and Bodhi comments
// until Bodhi takes them. Layout:
//
//	queue/<seq>-<uuid>-<index>.json       posts waiting, sent in <seq> order
//	rejected/<uuid>-<index>.json          posts ResultsDB refused, with its message
//	reported/<uuid>                       executions reported with posts queued or refused, comments queued, or no post (where ResultsDB holds every post, it tells)
//	comments/<seq>-<update>-<key>.json    Bodhi comments waiting, sent in <seq> order
//	comments-rejected/<same name>         comments Bodhi refused, with its answer
//	bodhi-comments.json                   which comments were made when (the span rule)
//
// Posts and comments share the sequence but not the queue: either service
// being away holds up only its own queue.
//
// Every file is written to a temporary name, fsync'd, renamed, and the
// folder fsync'd, so a crash leaves either the whole file or none; a
// reported/ marker, of which only the name counts, is written in place and
// only its folder fsync'd.
type spool struct {
	dir string
	mu  sync.Mutex
	seq uint64
}

// spoolEntry is one queued post.
type spoolEntry struct {
	UUID  string `json:"uuid"`
	Index int    `json:"index"`
	// Prior counts the posts of the same execution before this one that
	// look the same; ResultsDB holds this post already when it holds more
	// than Prior of them.
	Prior   int                    `json:"prior"`
	Post    contract.ResultsDBPost `json:"post"`
	Spooled time.Time              `json:"spooled"`
	// LastError is why it was spooled.
	LastError string `json:"last_error,omitempty"`
	// Failures counts the times ResultsDB answered 500 to this post while it
	// took others (see Reporter.contentFailure); LastFailure is the last.
	Failures    int        `json:"failures,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`

	name string
}

// rejectedEntry is a post ResultsDB refused.
type rejectedEntry struct {
	UUID     string                 `json:"uuid"`
	Index    int                    `json:"index"`
	Status   int                    `json:"status"`
	Message  string                 `json:"message"`
	Rejected time.Time              `json:"rejected"`
	Post     contract.ResultsDBPost `json:"post"`
}

func openSpool(dir string) (*spool, error) {
	if dir == "" {
		return nil, errors.New("no spool folder configured (reporter.spool)")
	}
	for _, sub := range []string{postsQueue, "rejected", "reported", commentsQueue, commentsRejected} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("spool folder: %w", err)
		}
	}
	s := &spool{dir: dir}
	for _, q := range []string{postsQueue, commentsQueue} {
		names, err := s.listIn(q)
		if err != nil {
			return nil, err
		}
		s.seeSeq(names)
	}
	return s, nil
}

// Queue folders of the spool.
const (
	postsQueue       = "queue"
	commentsQueue    = "comments"
	commentsRejected = "comments-rejected"
)

// seeSeq moves the sequence past the names' sequence numbers.
func (s *spool) seeSeq(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if seq, ok := nameSeq(n); ok && seq > s.seq {
			s.seq = seq
		}
	}
}

// nameSeq reads the sequence number a queue file name starts with.
func nameSeq(name string) (uint64, bool) {
	seq, err := strconv.ParseUint(strings.SplitN(name, "-", 2)[0], 10, 64)
	return seq, err == nil
}

// nextSeq is the next sequence number, for a file that goes to the end of
// its queue.
func (s *spool) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// safeName keeps a uuid usable as part of a file name: it comes from
// outside and must not reach outside the spool.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	out := string(b)
	if out == "" || strings.Trim(out, ".") == "" {
		out = "_" + out
	}
	return out
}

// lock takes the spool for this process: two processes sharing a spool
// folder (a worker and `taskotron report --flush`) must not both send the
// same post. It blocks until the lock is free or ctx ends.
func (s *spool) lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("spool lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the spool lock: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// list returns the queued posts' file names, oldest first.
func (s *spool) list() ([]string, error) { return s.listIn(postsQueue) }

// listIn returns the file names waiting in a queue folder, oldest first.
func (s *spool) listIn(queue string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, queue))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *spool) queued() (int, error) {
	names, err := s.list()
	return len(names), err
}

// add queues entries in order.
func (s *spool) add(entries []spoolEntry) error {
	dir := filepath.Join(s.dir, postsQueue)
	for _, e := range entries {
		name := fmt.Sprintf("%020d-%s-%d.json", s.nextSeq(), safeName(e.UUID), e.Index)
		if err := writeFileSync(dir, name, e); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// put writes v as queue/name (replacing a file of that name) durably.
func (s *spool) put(queue, name string, v any) error {
	dir := filepath.Join(s.dir, queue)
	if err := writeFileSync(dir, name, v); err != nil {
		return err
	}
	return syncDir(dir)
}

// count is how many files a folder of the spool holds (reasons that go
// with set-aside files not counted).
func (s *spool) count(sub string) (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, sub))
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n, nil
}

func (s *spool) load(name string) (spoolEntry, error) {
	var e spoolEntry
	if err := s.loadIn(postsQueue, name, &e); err != nil {
		return e, err
	}
	e.name = name
	return e, nil
}

// loadIn reads queue/name into v; a missing file is os.ErrNotExist.
func (s *spool) loadIn(queue, name string, v any) error {
	raw, err := os.ReadFile(filepath.Join(s.dir, queue, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("spool entry %s/%s: %w", queue, name, err)
	}
	return nil
}

func (s *spool) remove(name string) error { return s.removeIn(postsQueue, name) }

func (s *spool) removeIn(queue, name string) error {
	dir := filepath.Join(s.dir, queue)
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(dir)
}

// reject keeps a refused post with the server's message, then drops it
// from the queue (when it was queued).
func (s *spool) reject(e spoolEntry, rej *RejectedError) error {
	r := rejectedEntry{UUID: e.UUID, Index: e.Index, Status: rej.Status, Message: rej.Message, Rejected: time.Now().UTC(), Post: e.Post}
	dir := filepath.Join(s.dir, "rejected")
	if err := writeFileSync(dir, fmt.Sprintf("%s-%d.json", safeName(e.UUID), e.Index), r); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if e.name != "" {
		return s.remove(e.name)
	}
	return nil
}

// setAside keeps v (an entry with the reason it was refused) in the
// rejected folder under the queue file's name, then drops the queue file.
func (s *spool) setAside(queue, rejected, name string, v any) error {
	if err := s.put(rejected, name, v); err != nil {
		return err
	}
	return s.removeIn(queue, name)
}

// rejectUnreadable moves a queue file that cannot be read aside.
func (s *spool) rejectUnreadable(name string, cause error) error {
	return s.moveUnreadable(postsQueue, "rejected", name, cause)
}

// moveUnreadable moves a queue file that cannot be read to the rejected
// folder, with the reason beside it.
func (s *spool) moveUnreadable(queue, rejected, name string, cause error) error {
	from := filepath.Join(s.dir, queue, name)
	to := filepath.Join(s.dir, rejected, "unreadable-"+name)
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.WriteFile(to+".reason", []byte(cause.Error()+"\n"), 0o644); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return errors.Join(syncDir(filepath.Join(s.dir, queue)), syncDir(filepath.Join(s.dir, rejected)))
}

func (s *spool) reported(uuid string) bool {
	_, err := os.Stat(filepath.Join(s.dir, "reported", safeName(uuid)))
	return err == nil
}

// markReported records that the execution's posts are all stored or
// queued. Only the marker's name is ever read (reported), so only the
// folder entry must outlive a crash: the folder is synced, not the file,
// which may then be empty and still says reported. One flush to the disk
// per execution instead of two, and no temporary file.
func (s *spool) markReported(uuid string, posts int) error {
	dir := filepath.Join(s.dir, "reported")
	raw, err := json.Marshal(map[string]any{"uuid": uuid, "posts": posts, "reported": time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, safeName(uuid)), raw, 0o644); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(dir)
}

// writeFileSync writes v as JSON to dir/name atomically and durably
// (except for the folder entry: the caller syncs the folder once).
func writeFileSync(dir, name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("spool: encoding %s: %w", name, err)
	}
	if err := atomicfile.Write(dir, name, raw); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
