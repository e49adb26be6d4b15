package trigger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// liteIndex is the SQLite store's state in memory; the database is its
// durable copy, written before any caller hears back.
type liteIndex struct {
	msgs      map[string]liteMsg
	keys      map[string]int64 // stored key -> claimed at (unix nanos)
	window    time.Duration    // the longest dedup window asked for, for pruning
	lastPrune time.Time
}

type liteMsg struct {
	done bool
	jobs []byte // JSON of the recorded jobs while pending
	at   int64
}

func (s *SQLStore) loadIndex(ctx context.Context) error {
	s.index = liteIndex{msgs: map[string]liteMsg{}, keys: map[string]int64{}}
	rows, err := s.db.QueryContext(ctx, `SELECT msg_id, state, jobs, at FROM trigger_messages`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, state, jobs string
		var at int64
		if err := rows.Scan(&id, &state, &jobs, &at); err != nil {
			rows.Close()
			return err
		}
		m := liteMsg{done: state == "done", at: at}
		if !m.done {
			m.jobs = []byte(jobs)
		}
		s.index.msgs[id] = m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT key, at FROM trigger_keys`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var at int64
		if err := rows.Scan(&k, &at); err != nil {
			return err
		}
		s.index.keys[k] = at
	}
	return rows.Err()
}

type keyRow struct {
	key, msgID string
	at         int64
}

type msgRow struct {
	id   string
	jobs []byte
	at   int64
}

// writer decides every waiting request against the index (and what the
// same batch decided before it), writes the batch in one transaction, and
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
	ix := &s.index
	msgs := map[string]liteMsg{}
	keys := map[string]int64{}
	getMsg := func(id string) (liteMsg, bool) {
		if m, ok := msgs[id]; ok {
			return m, true
		}
		m, ok := ix.msgs[id]
		return m, ok
	}
	getKey := func(k string) (int64, bool) {
		if at, ok := keys[k]; ok {
			return at, true
		}
		at, ok := ix.keys[k]
		return at, ok
	}
	var (
		keyRows []keyRow
		msgRows []msgRow
		doneIDs []string
		replies = make([]storeReply, len(batch))
		now     time.Time
	)
	for i, r := range batch {
		if r.done {
			if m, ok := getMsg(r.msgID); ok && !m.done {
				msgs[r.msgID] = liteMsg{done: true, at: m.at}
				doneIDs = append(doneIDs, r.msgID)
			}
			continue
		}
		now = r.now
		// Keys are pruned by the longest window asked for: the short
		// window of tag jobs must not prune the keys of builds.
		ix.window = max(ix.window, r.window)
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
		at, cutoff := r.now.UnixNano(), r.now.Add(-r.window).UnixNano()
		for _, j := range r.jobs {
			k := storedKey(j)
			if prev, ok := getKey(k); ok && prev >= cutoff {
				res.Duplicates = append(res.Duplicates, j)
				continue
			}
			keys[k] = at
			keyRows = append(keyRows, keyRow{k, r.msgID, at})
			res.Jobs = append(res.Jobs, j)
		}
		if r.msgID != "" {
			recorded, err := json.Marshal(orEmpty(res.Jobs))
			if err != nil {
				replies[i].err = err
				continue
			}
			msgs[r.msgID] = liteMsg{jobs: recorded, at: at}
			msgRows = append(msgRows, msgRow{r.msgID, recorded, at})
		}
		replies[i].res = res
	}
	prune := !now.IsZero() && now.Sub(ix.lastPrune) > 10*time.Minute
	err := s.writeBatch(keyRows, msgRows, doneIDs, prune, now)
	if err == nil {
		for id, m := range msgs {
			ix.msgs[id] = m
		}
		for k, at := range keys {
			ix.keys[k] = at
		}
		if prune {
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
	}
	for i, r := range batch {
		if err != nil {
			replies[i] = storeReply{err: err}
		}
		r.reply <- replies[i]
	}
}

// rowsPerStatement keeps multi-row statements small enough to prepare once
// per size and keep.
const rowsPerStatement = 64

// stmt returns a prepared statement for kind with n rows, preparing it the
// first time: parsing SQL costs more than running it here.
func (s *SQLStore) stmt(kind string, n int) (*sql.Stmt, error) {
	name := fmt.Sprintf("%s/%d", kind, n)
	if st, ok := s.stmts[name]; ok {
		return st, nil
	}
	var q string
	switch kind {
	case "keys":
		q = `INSERT INTO trigger_keys (key, msg_id, at) VALUES ` + placeholders(n, 3) +
			` ON CONFLICT (key) DO UPDATE SET msg_id = excluded.msg_id, at = excluded.at`
	case "msgs":
		q = `INSERT INTO trigger_messages (msg_id, jobs, at, state) VALUES ` + placeholdersWith(n, 3, "'pending'") +
			` ON CONFLICT (msg_id) DO NOTHING`
	case "done":
		q = `UPDATE trigger_messages SET state = 'done', jobs = '[]' WHERE msg_id IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
	}
	st, err := s.db.Prepare(q)
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[name] = st
	return st, nil
}

// execRows runs kind's statement over rows of cols arguments each, in
// chunks of at most rowsPerStatement rows.
func (s *SQLStore) execRows(tx *sql.Tx, kind string, cols int, args []any) error {
	rows := len(args) / cols
	for start := 0; start < rows; start += rowsPerStatement {
		n := min(rowsPerStatement, rows-start)
		st, err := s.stmt(kind, n)
		if err != nil {
			return err
		}
		if _, err := tx.Stmt(st).Exec(args[start*cols : (start+n)*cols]...); err != nil {
			return err
		}
	}
	return nil
}

func (s *SQLStore) writeBatch(keyRows []keyRow, msgRows []msgRow, doneIDs []string, prune bool, now time.Time) error {
	if len(keyRows) == 0 && len(msgRows) == 0 && len(doneIDs) == 0 && !prune {
		return nil
	}
	// Statements are prepared before the transaction takes the one
	// connection.
	for kind, rows := range map[string]int{"keys": len(keyRows), "msgs": len(msgRows), "done": len(doneIDs)} {
		if rows >= rowsPerStatement {
			if _, err := s.stmt(kind, rowsPerStatement); err != nil {
				return err
			}
		}
		if rows%rowsPerStatement > 0 {
			if _, err := s.stmt(kind, rows%rowsPerStatement); err != nil {
				return err
			}
		}
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	args := make([]any, 0, 3*len(keyRows))
	for _, r := range keyRows {
		args = append(args, r.key, r.msgID, r.at)
	}
	if err := s.execRows(tx, "keys", 3, args); err != nil {
		return err
	}
	args = make([]any, 0, 3*len(msgRows))
	for _, r := range msgRows {
		args = append(args, r.id, string(r.jobs), r.at)
	}
	if err := s.execRows(tx, "msgs", 3, args); err != nil {
		return err
	}
	args = make([]any, 0, len(doneIDs))
	for _, id := range doneIDs {
		args = append(args, id)
	}
	if err := s.execRows(tx, "done", 1, args); err != nil {
		return err
	}
	if prune {
		if _, err := tx.Exec(`DELETE FROM trigger_keys WHERE at < ?`, now.Add(-s.index.window).UnixNano()); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM trigger_messages WHERE at < ?`, now.Add(-MessageRetention).UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func placeholders(rows, cols int) string { return placeholdersWith(rows, cols, "") }

// placeholdersWith makes "(?,?,?),(?,?,?)…", each row ending with extra
// when it is not empty.
func placeholdersWith(rows, cols int, extra string) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",")
	if extra != "" {
		row += "," + extra
	}
	row += ")"
	return strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}
