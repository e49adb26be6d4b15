package resultsdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Results are written in batches: results posted at the same time share
// one transaction (one commit, one WAL write on SQLite) and, on SQLite, one
// statement per table for their groups, data and events; on PostgreSQL the
// batch is one statement (insertPostgres). A 201 is still answered only
// after the commit. Should the database refuse a batch for a reason that is
// not worth a retry, each of its results is written again on its own, so
// that one result the database cannot store fails alone.

// maxBatch bounds the results of one transaction, so that a commit does not
// keep the first poster waiting long.
const maxBatch = 64

// errClosed answers a post that arrives while the store closes.
var errClosed = errors.New("results store is closed")

type writeRequest struct {
	in   NewResult
	res  Result
	err  error
	done chan struct{}
}

// startWriters starts the goroutines that commit posted results: one where
// the database takes one writer at a time (SQLite), more where commits can
// overlap (PostgreSQL).
func (s *sqlStore) startWriters(n int) {
	s.writes = make(chan *writeRequest)
	s.writesStop = make(chan struct{})
	for range n {
		s.writers.Add(1)
		go func() {
			defer s.writers.Done()
			s.writeLoop()
		}()
	}
}

func (s *sqlStore) stopWriters() {
	if s.writesStop != nil {
		close(s.writesStop)
		s.writers.Wait()
		s.writesStop = nil
	}
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
}

// CreateResult stores one result and its event, committed before it returns.
func (s *sqlStore) CreateResult(ctx context.Context, in NewResult) (Result, error) {
	r := &writeRequest{in: in, done: make(chan struct{})}
	select {
	case s.writes <- r:
	case <-s.writesStop:
		return Result{}, errClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	// Once taken, the write goes on even if the poster leaves: what it
	// would see is what happens when an answer is lost on the way.
	<-r.done
	if r.err != nil {
		return Result{}, r.err
	}
	if in.Event {
		s.wakePublisher()
	}
	return r.res, nil
}

// CreateResults stores every result of batch in one transaction: all of
// them or, on any error, none (a KCIDB submission).
func (s *sqlStore) CreateResults(ctx context.Context, batch []NewResult) ([]Result, error) {
	reqs := make([]*writeRequest, len(batch))
	for i, in := range batch {
		reqs[i] = &writeRequest{in: in}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error { return s.insertResults(ctx, tx, reqs) })
	if err != nil && len(reqs) > 1 && !retryable(err) {
		// Again one result at a time, still all or none, to name the one
		// the database refuses.
		err = s.tx(ctx, func(tx *sql.Tx) error {
			for i := range reqs {
				if err := s.insertResults(ctx, tx, reqs[i:i+1]); err != nil {
					return fmt.Errorf("result %d of %d: %w", i+1, len(reqs), err)
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(reqs))
	events := false
	for i, r := range reqs {
		out[i] = r.res
		events = events || r.in.Event
	}
	if events {
		s.wakePublisher()
	}
	return out, nil
}

// wakePublisher tells the events publisher, if one listens, that the
// outbox has new entries.
func (s *sqlStore) wakePublisher() {
	if s.notify == nil {
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *sqlStore) writeLoop() {
	for {
		var batch []*writeRequest
		select {
		case r := <-s.writes:
			batch = append(batch, r)
		case <-s.writesStop:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// commit writes batch in one transaction (retried whole when the database
// asks for it: a deadlock, a serialization failure), or, refused, each of
// its results in a transaction of its own.
func (s *sqlStore) commit(batch []*writeRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	write := func(batch []*writeRequest) error {
		return s.tx(ctx, func(tx *sql.Tx) error { return s.insertResults(ctx, tx, batch) })
	}
	if s.d.name == "postgres" {
		// One statement is its own transaction: a round trip per batch.
		write = func(batch []*writeRequest) error {
			return retry(ctx, func() error { return s.insertPostgres(ctx, nil, batch) })
		}
	} else {
		s.prepare(ctx, batch)
	}
	err := write(batch)
	switch {
	case err == nil:
		return
	case len(batch) == 1:
		batch[0].res, batch[0].err = Result{}, err
		return
	}
	for _, r := range batch {
		if err := write([]*writeRequest{r}); err != nil {
			r.res, r.err = Result{}, err
		}
	}
}

// insertResults writes the results of batch in tx, filling in each one's
// stored form.
func (s *sqlStore) insertResults(ctx context.Context, tx *sql.Tx, batch []*writeRequest) error {
	if s.d.name == "postgres" {
		return s.insertPostgres(ctx, tx, batch)
	}
	seen := batchSeen{testcases: map[string]Testcase{}, groups: map[string]seenGroup{}}
	ids, err := s.newResultIDs(ctx, tx, len(batch))
	if err != nil {
		return err
	}
	var links, data, events rowsOf
	var groupsOf [][]int64
	now := micros(time.Now())
	for _, r := range batch {
		in := r.in
		res := Result{Outcome: in.Outcome, SubmitTime: submitTime(in), Note: in.Note, RefURL: in.RefURL, Data: in.Data, Groups: []string{}, Origin: origin(in)}
		tc, err := seen.testcase(in.Testcase, func() (Testcase, error) { return s.saveTestcase(ctx, tx, in.Testcase) })
		if err != nil {
			return err
		}
		res.Testcase = tc
		var groupIDs []int64
		for _, g := range in.Groups {
			id, saved, err := seen.group(g, func() (int64, Group, error) { return s.saveGroup(ctx, tx, g) })
			if err != nil {
				return err
			}
			if !containsInt(groupIDs, id) {
				groupIDs = append(groupIDs, id)
				res.Groups = append(res.Groups, saved.UUID)
			}
		}
		r.res = res
		groupsOf = append(groupsOf, groupIDs)
	}
	var results rowsOf
	for i, r := range batch {
		in := r.in
		r.res.ID = ids[i]
		results.add(r.res.ID, r.res.Testcase.Name, micros(r.res.SubmitTime), in.Outcome, nullString(in.Note), nullString(in.RefURL), r.res.Origin)
		for _, gid := range groupsOf[i] {
			links.add(gid, r.res.ID)
		}
		for _, p := range in.Data {
			data.add(r.res.ID, p.Key, p.Value)
		}
		if in.Event {
			events.add(r.res.ID, now)
		}
	}
	if err := s.insertRows(ctx, tx, resultTable, results); err != nil {
		return fmt.Errorf("create results: %w", err)
	}
	if err := s.insertRows(ctx, tx, linkTable, links); err != nil {
		return fmt.Errorf("link results to groups: %w", err)
	}
	if err := s.insertRows(ctx, tx, dataTable, data); err != nil {
		return fmt.Errorf("store result data: %w", err)
	}
	if err := s.insertRows(ctx, tx, outboxTable, events); err != nil {
		return fmt.Errorf("queue result events: %w", err)
	}
	return nil
}

// submitTime is when in was submitted, now if it does not say, with the
// microsecond precision it is stored with (so shown as stored).
func submitTime(in NewResult) time.Time {
	when := in.SubmitTime
	if when.IsZero() {
		when = time.Now()
	}
	return fromMicros(micros(when))
}

// origin is the system that submitted in.
func origin(in NewResult) string {
	if in.Origin == "" {
		return DefaultOrigin
	}
	return in.Origin
}

// lastResultID is where SQLite's new result ids start.
const lastResultID = "SELECT COALESCE(MAX(id), 0) FROM result"

// newResultIDs takes n result ids for the transaction on SQLite, whose
// transaction holds the database's write lock: after the highest, as
// SQLite itself numbers rows. PostgreSQL's come from the identity
// column's sequence, in the batch statement.
func (s *sqlStore) newResultIDs(ctx context.Context, tx *sql.Tx, n int) ([]int64, error) {
	st, err := s.stmt(ctx, tx, lastResultID)
	if err != nil {
		return nil, err
	}
	var last int64
	if err := st.QueryRowContext(ctx).Scan(&last); err != nil {
		return nil, fmt.Errorf("number results: %w", err)
	}
	ids := make([]int64, 0, n)
	for i := range n {
		ids = append(ids, last+1+int64(i))
	}
	return ids, nil
}

// rowsOf collects the rows of a multi-row INSERT.
type rowsOf struct {
	width int
	args  []any
}

func (r *rowsOf) add(values ...any) {
	r.width = len(values)
	r.args = append(r.args, values...)
}

// rowsPerInsert keeps each statement under SQLite's parameter limit, and the
// statements prepared for the write path few.
const rowsPerInsert = 100

const (
	selectTestcase = "SELECT ref_url FROM testcase WHERE name = ?"
	insertTestcase = "INSERT INTO testcase (name, ref_url) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
	updateTestcase = "UPDATE testcase SET ref_url = ? WHERE name = ?"
	selectGroup    = "SELECT id, description, ref_url FROM run_group WHERE uuid = ?"
	insertGroup    = "INSERT INTO run_group (uuid, description, ref_url) VALUES (?, ?, ?) ON CONFLICT (uuid) DO NOTHING RETURNING id"
	updateGroup    = "UPDATE run_group SET description = ?, ref_url = ? WHERE id = ?"
	resultTable    = "result (id, testcase_name, submit_time, outcome, note, ref_url, origin)"
	linkTable      = "result_group (group_id, result_id)"
	dataTable      = "result_data (result_id, key, value)"
	outboxTable    = "outbox (result_id, created)"
)

// insertQueries are the statements that insert n rows of width values into
// table (with its column list), at most rowsPerInsert rows each.
func insertQueries(table string, width, n int) []string {
	var out []string
	for lo := 0; lo < n; lo += rowsPerInsert {
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
		out = append(out, "INSERT INTO "+table+" VALUES "+strings.TrimSuffix(strings.Repeat(row+",", min(rowsPerInsert, n-lo)), ","))
	}
	return out
}

// insertRows inserts rows into table.
func (s *sqlStore) insertRows(ctx context.Context, tx *sql.Tx, table string, rows rowsOf) error {
	if len(rows.args) == 0 {
		return nil
	}
	for i, q := range insertQueries(table, rows.width, len(rows.args)/rows.width) {
		lo := i * rowsPerInsert * rows.width
		st, err := s.stmt(ctx, tx, q)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, rows.args[lo:min(lo+rowsPerInsert*rows.width, len(rows.args))]...); err != nil {
			return err
		}
	}
	return nil
}

// writeStmt is query as prepared for the store's writers, in tx or, with
// tx nil, on its own.
func (s *sqlStore) writeStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if tx != nil {
		return s.stmt(ctx, tx, query)
	}
	st, _, err := s.prepared(ctx, &s.stmts, s.write, query)
	return st, err
}

// prepared is query prepared on db, kept in cache by its text: prepared
// once however many ask at the same time. added says this call added it.
func (s *sqlStore) prepared(ctx context.Context, cache *sync.Map, db *sql.DB, query string) (st *sql.Stmt, added bool, err error) {
	if st, ok := cache.Load(query); ok {
		return st.(*sql.Stmt), false, nil
	}
	st, err = db.PrepareContext(ctx, s.d.bind(query))
	if err != nil {
		return nil, false, fmt.Errorf("prepare %s: %w", queryHead(query), err)
	}
	if prev, loaded := cache.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), false, nil
	}
	return st, true, nil
}

// queryHead names a query in an error: its first line, shortened.
func queryHead(query string) string {
	head, _, cut := strings.Cut(query, "\n")
	if len(head) > 80 {
		head, cut = head[:80], true
	}
	if cut {
		head += " …"
	}
	return strconv.Quote(head)
}

// stmt is query as prepared for the store's writers (prepare), used in tx;
// one not prepared yet is prepared in tx alone, as a writer cannot ask for
// a second connection while it holds SQLite's one.
func (s *sqlStore) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	st, err := tx.PrepareContext(ctx, s.d.bind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", queryHead(query), err)
	}
	return st, nil
}

// prepare readies the statements writing batch will use on SQLite, outside
// any transaction: after the first batches of each shape the write path
// parses no SQL. (PostgreSQL's one statement is prepared as it is first
// used: writeStmt.)
func (s *sqlStore) prepare(ctx context.Context, batch []*writeRequest) {
	var links, data, events int
	for _, r := range batch {
		uuids := map[string]bool{}
		for _, g := range r.in.Groups {
			uuids[g.UUID] = true
		}
		links += len(uuids)
		data += len(r.in.Data)
		if r.in.Event {
			events++
		}
	}
	queries := []string{selectTestcase, insertTestcase, updateTestcase, selectGroup, insertGroup, updateGroup, lastResultID}
	queries = append(queries, insertQueries(resultTable, 7, len(batch))...)
	queries = append(queries, insertQueries(linkTable, 2, links)...)
	queries = append(queries, insertQueries(dataTable, 3, data)...)
	queries = append(queries, insertQueries(outboxTable, 2, events)...)
	for _, q := range queries {
		// One that cannot be prepared is prepared in the transaction
		// instead, which says why.
		_, _, _ = s.prepared(ctx, &s.stmts, s.write, q)
	}
}

// batchSeen is what one SQLite transaction knows of the testcases and
// groups its results name, as each save left it. An update that would
// change nothing is not made.
type batchSeen struct {
	testcases map[string]Testcase
	groups    map[string]seenGroup
}

type seenGroup struct {
	id    int64
	saved Group
}

func (b *batchSeen) testcase(u TestcaseUpdate, save func() (Testcase, error)) (Testcase, error) {
	if t, ok := b.testcases[u.Name]; ok && (!u.SetRefURL || equalPtr(t.RefURL, u.RefURL)) {
		return t, nil
	}
	saved, err := save()
	if err == nil {
		b.testcases[u.Name] = saved
	}
	return saved, err
}

func (b *batchSeen) group(u GroupUpdate, save func() (int64, Group, error)) (int64, Group, error) {
	if g, ok := b.groups[u.UUID]; ok && (!u.SetRefURL || equalPtr(g.saved.RefURL, u.RefURL)) &&
		(!u.SetDescription || equalPtr(g.saved.Description, u.Description)) {
		return g.id, g.saved, nil
	}
	id, saved, err := save()
	if err == nil {
		b.groups[u.UUID] = seenGroup{id, saved}
	}
	return id, saved, err
}
