package trigger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

// The SQLite store's journal: one row per event, in the order the writer
// decided them. A claim row holds the keys a message claimed and, for a
// message with an id, its jobs (until a done row for it follows); a done
// row says the message's jobs are queued. Rows are only ever appended (the
// rowid grows), so a commit writes the last pages of one b-tree, whatever
// the keys are; pruning deletes from the other end.
const journalSchema = `CREATE TABLE IF NOT EXISTS trigger_journal (
	seq INTEGER PRIMARY KEY,
	at INTEGER NOT NULL,
	msg_id TEXT NOT NULL,
	done INTEGER NOT NULL,
	keys BLOB,
	jobs TEXT
)`

// liteIndex is the SQLite store's state in memory; the journal is its
// durable copy, written before any caller hears back.
type liteIndex struct {
	msgs      map[string]liteMsg
	keys      map[[sha256.Size]byte]int64 // key hash -> claimed at (unix nanos)
	window    time.Duration               // the longest dedup window asked for, for pruning
	lastPrune time.Time
}

type liteMsg struct {
	done bool
	jobs []byte // JSON of the recorded jobs while pending
	at   int64
}

// journalRow is one row to append.
type journalRow struct {
	at    int64
	msgID string
	done  bool
	keys  []byte // concatenated key hashes
	jobs  []byte // nil for none
}

// openJournal creates the journal, takes over the state of the older
// two-table layout if it is there, and loads the index.
func (s *SQLStore) openJournal(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, journalSchema); err != nil {
		return err
	}
	if err := s.migrateTables(ctx); err != nil {
		return fmt.Errorf("moving the state to the journal: %w", err)
	}
	return s.loadIndex(ctx)
}

// migrateTables moves a state written by earlier versions (one row per
// message in trigger_messages, one per key in trigger_keys) into the
// journal, in one transaction.
func (s *SQLStore) migrateTables(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('trigger_messages', 'trigger_keys')`).Scan(&n); err != nil || n < 2 {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range []string{
		// Keys first: a claim row without a message id carries only keys.
		`INSERT INTO trigger_journal (at, msg_id, done, keys) SELECT at, '', 0, unhex(key) FROM trigger_keys ORDER BY at`,
		`INSERT INTO trigger_journal (at, msg_id, done, jobs) SELECT at, msg_id, 0, jobs FROM trigger_messages WHERE state = 'pending' ORDER BY at`,
		`INSERT INTO trigger_journal (at, msg_id, done) SELECT at, msg_id, 1 FROM trigger_messages WHERE state = 'done' ORDER BY at`,
		`DROP TABLE trigger_keys`,
		`DROP TABLE trigger_messages`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// loadIndex replays the journal.
func (s *SQLStore) loadIndex(ctx context.Context) error {
	s.index = liteIndex{msgs: map[string]liteMsg{}, keys: map[[sha256.Size]byte]int64{}}
	rows, err := s.db.QueryContext(ctx, `SELECT at, msg_id, done, keys, jobs FROM trigger_journal ORDER BY seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r journalRow
		var jobs sql.NullString
		if err := rows.Scan(&r.at, &r.msgID, &r.done, &r.keys, &jobs); err != nil {
			return err
		}
		if jobs.Valid {
			r.jobs = []byte(jobs.String)
		}
		if err := s.index.apply(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// apply adds one journal row to the index.
func (ix *liteIndex) apply(r journalRow) error {
	if len(r.keys)%sha256.Size != 0 {
		return fmt.Errorf("journal row of message %q: keys of %d bytes", r.msgID, len(r.keys))
	}
	for k := r.keys; len(k) > 0; k = k[sha256.Size:] {
		ix.keys[[sha256.Size]byte(k)] = r.at
	}
	switch {
	case r.msgID == "":
	case r.done:
		m := ix.msgs[r.msgID]
		if m.at == 0 {
			m.at = r.at
		}
		ix.msgs[r.msgID] = liteMsg{done: true, at: m.at}
	default:
		ix.msgs[r.msgID] = liteMsg{jobs: r.jobs, at: r.at}
	}
	return nil
}

// writer decides every waiting request against the index (and what the
// same batch decided before it), appends the batch in one transaction, and
// only then updates the index and answers.
func (s *SQLStore) writer() {
	defer close(s.done)
	for {
		var batch []storeReq
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.quit:
			return
		}
		// A commit costs about as much as many rows: when few requests
		// wait, give others a moment to join.
		linger := time.NewTimer(500 * time.Microsecond)
	more:
		for len(batch) < 1024 {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				continue
			default:
			}
			if len(batch) >= 16 {
				break
			}
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		s.runBatch(batch)
	}
}

func (s *SQLStore) runBatch(batch []storeReq) {
	// Decisions go to a copy-on-write overlay: the index changes only once
	// the batch is durable.
	overlay := liteIndex{msgs: map[string]liteMsg{}, keys: map[[sha256.Size]byte]int64{}}
	getMsg := func(id string) (liteMsg, bool) {
		if m, ok := overlay.msgs[id]; ok {
			return m, true
		}
		m, ok := s.index.msgs[id]
		return m, ok
	}
	getKey := func(k [sha256.Size]byte) (int64, bool) {
		if at, ok := overlay.keys[k]; ok {
			return at, true
		}
		at, ok := s.index.keys[k]
		return at, ok
	}
	var (
		rows    []journalRow
		replies = make([]storeReply, len(batch))
		now     time.Time
		window  = s.index.window
	)
	for i, r := range batch {
		if r.done {
			if m, ok := getMsg(r.msgID); ok && !m.done {
				row := journalRow{at: m.at, msgID: r.msgID, done: true}
				overlay.apply(row)
				rows = append(rows, row)
			}
			continue
		}
		now = r.now
		// Keys are pruned by the longest window asked for: the short
		// window of tag jobs must not prune the keys of builds.
		window = max(window, r.window)
		var res ClaimResult
		if r.msgID != "" {
			if m, ok := getMsg(r.msgID); ok {
				if m.done {
					res.Seen = "done"
				} else {
					res.Seen = "pending"
					if err := json.Unmarshal(m.jobs, &res.Jobs); err != nil {
						replies[i].err = fmt.Errorf("message %s: recorded jobs: %w", r.msgID, err)
					}
				}
				replies[i].res = res
				continue
			}
		}
		row := journalRow{at: r.now.UnixNano(), msgID: r.msgID}
		cutoff := r.now.Add(-r.window).UnixNano()
		for _, j := range r.jobs {
			k := keyHash(j)
			if prev, ok := getKey(k); ok && prev >= cutoff {
				res.Duplicates = append(res.Duplicates, j)
				continue
			}
			overlay.keys[k] = row.at
			row.keys = append(row.keys, k[:]...)
			res.Jobs = append(res.Jobs, j)
		}
		if r.msgID != "" {
			recorded, err := contract.MarshalList(res.Jobs) // "[]" for none
			if err != nil {
				replies[i].err = err
				continue
			}
			row.jobs = recorded
		}
		if r.msgID != "" || len(row.keys) > 0 {
			overlay.apply(row)
			rows = append(rows, row)
		}
		replies[i].res = res
	}
	prune := !now.IsZero() && now.Sub(s.index.lastPrune) > 10*time.Minute
	err := s.append(rows, prune, now, window)
	if err == nil {
		for id, m := range overlay.msgs {
			s.index.msgs[id] = m
		}
		for k, at := range overlay.keys {
			s.index.keys[k] = at
		}
		s.index.window = window
		if prune {
			s.index.prune(now)
		}
	}
	for i, r := range batch {
		if err != nil {
			replies[i] = storeReply{err: err}
		}
		r.reply <- replies[i]
	}
}

// prune forgets keys older than the longest window and messages older than
// MessageRetention.
func (ix *liteIndex) prune(now time.Time) {
	ix.lastPrune = now
	cutoff, old := now.Add(-ix.window).UnixNano(), now.Add(-MessageRetention).UnixNano()
	for k, at := range ix.keys {
		if at < cutoff {
			delete(ix.keys, k)
		}
	}
	for id, m := range ix.msgs {
		if m.at < old {
			delete(ix.msgs, id)
		}
	}
}

// rowsPerStatement keeps multi-row statements small enough to prepare once
// per size and keep.
const rowsPerStatement = 64

// insert returns the prepared statement appending n rows, preparing it the
// first time: parsing SQL costs more than running it here.
func (s *SQLStore) insert(n int) (*sql.Stmt, error) {
	if st, ok := s.stmts[n]; ok {
		return st, nil
	}
	row := "(?,?,?,?,?)"
	st, err := s.db.Prepare(`INSERT INTO trigger_journal (at, msg_id, done, keys, jobs) VALUES ` + strings.TrimSuffix(strings.Repeat(row+",", n), ","))
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = map[int]*sql.Stmt{}
	}
	s.stmts[n] = st
	return st, nil
}

// append writes rows to the journal in one transaction, and deletes what
// no longer counts when prune is set.
func (s *SQLStore) append(rows []journalRow, prune bool, now time.Time, window time.Duration) error {
	if len(rows) == 0 && !prune {
		return nil
	}
	// Statements are prepared before the transaction takes the one
	// connection.
	for _, n := range []int{min(len(rows), rowsPerStatement), len(rows) % rowsPerStatement} {
		if n > 0 {
			if _, err := s.insert(n); err != nil {
				return err
			}
		}
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for start := 0; start < len(rows); start += rowsPerStatement {
		chunk := rows[start:min(start+rowsPerStatement, len(rows))]
		args := make([]any, 0, 5*len(chunk))
		for _, r := range chunk {
			var jobs any
			if r.jobs != nil {
				jobs = string(r.jobs)
			}
			args = append(args, r.at, r.msgID, r.done, r.keys, jobs)
		}
		st, _ := s.insert(len(chunk))
		if _, err := tx.Stmt(st).Exec(args...); err != nil {
			return err
		}
	}
	if prune {
		// Rows go in time order: everything before the first row that
		// still counts goes, the scan stops there.
		keep := now.Add(-max(window, MessageRetention)).UnixNano()
		if _, err := tx.Exec(`DELETE FROM trigger_journal WHERE seq < coalesce((SELECT seq FROM trigger_journal WHERE at >= ? ORDER BY seq LIMIT 1), 0)`, keep); err != nil {
			return err
		}
	}
	return tx.Commit()
}
