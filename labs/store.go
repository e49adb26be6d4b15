package labs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/sqldb"

	_ "modernc.org/sqlite"
)

// Request states. A request is queued until a lab leases it, running while
// the lease lives, reporting while the central server delivers its results,
// and then finished, crashed, aborted or cancelled.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateReporting = "reporting"
	StateFinished  = "finished"
	StateCrashed   = "crashed"
	StateAborted   = "aborted"
	StateCancelled = "cancelled"
)

// States lists the request states, for filters.
var States = []string{StateQueued, StateRunning, StateReporting, StateFinished, StateCrashed, StateAborted, StateCancelled}

// Request is a job for the labs: a task on an item, for any lab whose
// labels include Where. Its ID is the execution uuid everywhere after
// (execution record, ResultsDB group, artifacts folder).
type Request struct {
	ID        string     `json:"id"`
	TaskName  string     `json:"taskname"`
	Item      string     `json:"item"`
	ItemType  string     `json:"item_type"`
	Arch      string     `json:"arch,omitempty"`
	Where     Labels     `json:"where"`
	Priority  int        `json:"priority"`
	GitRepo   string     `json:"git_repo,omitempty"`
	GitBranch string     `json:"git_branch,omitempty"`
	MsgID     string     `json:"msg_id,omitempty"`
	Rule      string     `json:"rule,omitempty"`
	Created   time.Time  `json:"created"`
	State     string     `json:"state"`
	Attempt   int        `json:"attempt"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	// Lab and Board hold (or last held) its lease.
	Lab      string     `json:"lab,omitempty"`
	Board    string     `json:"board,omitempty"`
	Expires  *time.Time `json:"lease_expires,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Outcome  string     `json:"outcome,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Results  int        `json:"results"`

	lease string
}

// Board is what one lab agent offers: its labels, when it was last seen and
// the request it runs now.
type Board struct {
	Name     string     `json:"name"`
	Lab      string     `json:"lab"`
	Labels   Labels     `json:"labels"`
	Created  time.Time  `json:"created"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Running  string     `json:"running,omitempty"`
	Agent    string     `json:"agent,omitempty"`
}

// Offers is what the board's lab may be sent: its labels and lab=<lab>,
// which no agent can claim for another lab.
func (b Board) Offers() Labels {
	l := make(Labels, len(b.Labels)+1)
	for k, v := range b.Labels {
		l[k] = v
	}
	l["lab"] = b.Lab
	return l
}

// Lease is a request held by one lab until Expires, renewed by heartbeats.
type Lease struct {
	ID      string    `json:"lease"`
	Request Request   `json:"request"`
	Attempt int       `json:"attempt"`
	Expires time.Time `json:"expires"`
	// Heartbeat is how often the lab renews the lease.
	Heartbeat time.Duration `json:"heartbeat"`
}

// Errors the API turns into answers.
var (
	ErrNotFound  = errors.New("not found")
	ErrBadToken  = errors.New("the token is not known to the central server")
	ErrRevoked   = errors.New("the token was revoked")
	ErrLeaseGone = errors.New("the lease is gone: it expired or the request was cancelled, and the request went back to the queue or ended")
	ErrNotYours  = errors.New("held by another lab")
	ErrFinished  = errors.New("the run was already taken")
)

// Store keeps requests, boards, leases and lab tokens in the central
// server's database (SQLite, PostgreSQL), in tables of its own (lab_*).
type Store struct {
	db       *sql.DB
	postgres bool
	// leasing makes this process's leases one at a time on SQLite, which
	// writes one at a time anyway: boards woken together do not all race
	// for the same head of the queue.
	leasing sync.Mutex
}

// Open opens (creating its tables when needed) the store named by dsn:
// "sqlite:PATH" or "postgres://…".
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if s.db, s.postgres, err = sqldb.Open(dsn, "labs database", "NORMAL"); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("labs database: %w", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS lab_tokens (
			hash TEXT PRIMARY KEY, lab TEXT NOT NULL, created BIGINT NOT NULL, revoked BIGINT)`,
		`CREATE INDEX IF NOT EXISTS lab_tokens_lab_idx ON lab_tokens (lab)`,
		`CREATE TABLE IF NOT EXISTS lab_boards (
			name TEXT PRIMARY KEY, lab TEXT NOT NULL, labels TEXT NOT NULL, created BIGINT NOT NULL,
			last_seen BIGINT, running TEXT NOT NULL DEFAULT '', agent TEXT NOT NULL DEFAULT '')`,
		// One row per distinct where: a lab looks for work only under the
		// sets its labels satisfy, each the head of an index.
		`CREATE TABLE IF NOT EXISTS lab_wheres (wkey TEXT PRIMARY KEY, labels TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS lab_requests (
			id TEXT PRIMARY KEY, wkey TEXT NOT NULL, labels TEXT NOT NULL,
			taskname TEXT NOT NULL, item TEXT NOT NULL, item_type TEXT NOT NULL, arch TEXT NOT NULL DEFAULT '',
			priority INTEGER NOT NULL DEFAULT 0, git_repo TEXT NOT NULL DEFAULT '', git_branch TEXT NOT NULL DEFAULT '',
			msg_id TEXT NOT NULL DEFAULT '', rule TEXT NOT NULL DEFAULT '', created BIGINT NOT NULL,
			state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, not_before BIGINT NOT NULL DEFAULT 0,
			lease TEXT NOT NULL DEFAULT '', lab TEXT NOT NULL DEFAULT '', board TEXT NOT NULL DEFAULT '',
			expires BIGINT, started BIGINT, finished BIGINT,
			outcome TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', results INTEGER NOT NULL DEFAULT 0)`,
		// In the order a lab takes them, so that the next one is the head of
		// the index whatever the length of the queue.
		`CREATE INDEX IF NOT EXISTS lab_requests_next_idx ON lab_requests (state, wkey, priority DESC, created, id)`,
		`CREATE INDEX IF NOT EXISTS lab_requests_lease_idx ON lab_requests (lease)`,
		`CREATE INDEX IF NOT EXISTS lab_requests_created_idx ON lab_requests (created)`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// bind turns ? placeholders into PostgreSQL's $n.
func (s *Store) bind(q string) string { return sqldb.Bind(s.postgres, q) }

func (s *Store) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.bind(q), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// TokenPrefix starts every lab token, so that one found in a log or a file
// can be told for what it is.
const TokenPrefix = "tlab_"

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

var labNameRe = labelValueRe

// CheckLabName says what is wrong with a lab's (or a board's) name.
func CheckLabName(name string) error {
	if !labNameRe.MatchString(name) || strings.Contains(name, "/") {
		return fmt.Errorf("name %q: use letters, digits and '_.:+@-' (1 to 200)", clip(name))
	}
	return nil
}

// AddToken makes a new token for lab and keeps only its hash: the token is
// returned once.
func (s *Store) AddToken(ctx context.Context, lab string) (string, error) {
	if err := CheckLabName(lab); err != nil {
		return "", fmt.Errorf("lab %w", err)
	}
	token := TokenPrefix + random(32)
	_, err := s.exec(ctx, `INSERT INTO lab_tokens (hash, lab, created) VALUES (?, ?, ?)`, hashToken(token), lab, micros(time.Now()))
	return token, err
}

// RevokeTokens revokes every token of lab; it returns how many were live.
func (s *Store) RevokeTokens(ctx context.Context, lab string) (int, error) {
	n, err := s.exec(ctx, `UPDATE lab_tokens SET revoked = ? WHERE lab = ? AND revoked IS NULL`, micros(time.Now()), lab)
	return int(n), err
}

// TokenInfo is a lab with its tokens (never the tokens themselves).
type TokenInfo struct {
	Lab     string `json:"lab"`
	Live    int    `json:"live"`
	Revoked int    `json:"revoked"`
}

// Tokens lists the labs that have tokens.
func (s *Store) Tokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT lab, SUM(CASE WHEN revoked IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN revoked IS NULL THEN 0 ELSE 1 END)
		FROM lab_tokens GROUP BY lab ORDER BY lab`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []TokenInfo{}
	for rows.Next() {
		var t TokenInfo
		if err := rows.Scan(&t.Lab, &t.Live, &t.Revoked); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LabOf names the lab a token belongs to.
func (s *Store) LabOf(ctx context.Context, token string) (string, error) {
	var lab string
	var revoked sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT lab, revoked FROM lab_tokens WHERE hash = ?`), hashToken(token)).Scan(&lab, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", ErrBadToken
	case err != nil:
		return "", err
	case revoked.Valid:
		return "", ErrRevoked
	}
	return lab, nil
}

const requestColumns = `id, labels, taskname, item, item_type, arch, priority, git_repo, git_branch, msg_id, rule, created,
	state, attempt, not_before, lease, lab, board, expires, started, finished, outcome, reason, results`

func scanRequest(row interface{ Scan(...any) error }) (Request, error) {
	var r Request
	var labels string
	var created, notBefore int64
	var expires, started, finished sql.NullInt64
	err := row.Scan(&r.ID, &labels, &r.TaskName, &r.Item, &r.ItemType, &r.Arch, &r.Priority, &r.GitRepo, &r.GitBranch, &r.MsgID, &r.Rule, &created,
		&r.State, &r.Attempt, &notBefore, &r.lease, &r.Lab, &r.Board, &expires, &started, &finished, &r.Outcome, &r.Reason, &r.Results)
	if err != nil {
		return r, err
	}
	r.Where = Labels{}
	if err := json.Unmarshal([]byte(labels), &r.Where); err != nil {
		return r, fmt.Errorf("request %s: labels: %w", r.ID, err)
	}
	r.Created = time.UnixMicro(created).UTC()
	if notBefore > 0 {
		t := time.UnixMicro(notBefore).UTC()
		r.NotBefore = &t
	}
	r.Expires, r.Started, r.Finished = fromMicros(expires), fromMicros(started), fromMicros(finished)
	return r, nil
}

func (s *Store) requests(ctx context.Context, q string, args ...any) ([]Request, error) {
	rows, err := s.db.QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Request{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Put queues requests; one whose id is known already is left as it is
// (a resent put queues nothing twice). It returns the requests queued now.
func (s *Store) Put(ctx context.Context, reqs []Request) ([]Request, error) {
	var added []Request
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, r := range reqs {
		if r.Where == nil {
			r.Where = Labels{}
		}
		raw, err := json.Marshal(r.Where)
		if err != nil {
			return nil, err
		}
		wkey := r.Where.String()
		if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO lab_wheres (wkey, labels) VALUES (?, ?) ON CONFLICT (wkey) DO NOTHING`), wkey, string(raw)); err != nil {
			return nil, err
		}
		if r.Created.IsZero() {
			r.Created = time.Now().UTC()
		}
		res, err := tx.ExecContext(ctx, s.bind(`INSERT INTO lab_requests (id, wkey, labels, taskname, item, item_type, arch, priority, git_repo, git_branch, msg_id, rule, created, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
			r.ID, wkey, string(raw), r.TaskName, r.Item, r.ItemType, r.Arch, r.Priority, r.GitRepo, r.GitBranch, r.MsgID, r.Rule, micros(r.Created), StateQueued)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r.State = StateQueued
			added = append(added, r)
		}
	}
	return added, tx.Commit()
}

// Get reads one request.
func (s *Store) Get(ctx context.Context, id string) (Request, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, s.bind("SELECT "+requestColumns+" FROM lab_requests WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	return r, err
}

// ListQuery selects requests.
type ListQuery struct {
	States []string
	Lab    string
	Limit  int
}

// List returns requests: those waiting in the order they will be taken,
// then the others, newest first.
func (s *Store) List(ctx context.Context, q ListQuery) ([]Request, error) {
	var where []string
	var args []any
	if len(q.States) > 0 {
		where = append(where, "state IN ("+strings.Repeat("?, ", len(q.States)-1)+"?)")
		for _, st := range q.States {
			args = append(args, st)
		}
	}
	if q.Lab != "" {
		where = append(where, "lab = ?")
		args = append(args, q.Lab)
	}
	query := "SELECT " + requestColumns + " FROM lab_requests"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if q.Limit <= 0 || q.Limit > 10000 {
		q.Limit = 500
	}
	query += ` ORDER BY CASE WHEN state = 'queued' THEN 0 ELSE 1 END,
		CASE WHEN state = 'queued' THEN -priority ELSE 0 END, CASE WHEN state = 'queued' THEN created ELSE -created END, id LIMIT ?`
	args = append(args, q.Limit)
	return s.requests(ctx, query, args...)
}

// Counts are how many requests are in each state.
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM lab_requests GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// Cancel ends a request that has not ended: a queued one is not run, a
// running one's lease is gone (its lab is told at its next heartbeat).
func (s *Store) Cancel(ctx context.Context, id, reason string) (Request, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return r, err
	}
	n, err := s.exec(ctx, `UPDATE lab_requests SET state = ?, reason = ?, finished = ?, lease = '' WHERE id = ? AND state IN (?, ?)`,
		StateCancelled, reason, micros(time.Now()), id, StateQueued, StateRunning)
	if err != nil {
		return r, err
	}
	if n == 0 {
		return r, fmt.Errorf("request %s is %s: only a queued or running request can be cancelled", id, r.State)
	}
	s.clearBoard(ctx, r.Board, id)
	return s.Get(ctx, id)
}

func (s *Store) clearBoard(ctx context.Context, board, id string) {
	if board != "" {
		s.exec(ctx, `UPDATE lab_boards SET running = '' WHERE name = ? AND running = ?`, board, id)
	}
}

// wheres are the distinct where: sets requests were put with.
func (s *Store) wheres(ctx context.Context) (map[string]Labels, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT wkey, labels FROM lab_wheres`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Labels{}
	for rows.Next() {
		var k, raw string
		if err := rows.Scan(&k, &raw); err != nil {
			return nil, err
		}
		l := Labels{}
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			return nil, err
		}
		out[k] = l
	}
	return out, rows.Err()
}

// Lease gives the board the oldest of the highest-priority queued requests
// its labels satisfy, or nil when there is none. Two boards never get the
// same request: the lease is a conditional update that only one can win
// (on PostgreSQL after SELECT … FOR UPDATE SKIP LOCKED, so that servers
// sharing the database do not wait for each other's heads of the queue).
func (s *Store) Lease(ctx context.Context, board Board, ttl time.Duration) (*Lease, error) {
	wheres, err := s.wheres(ctx)
	if err != nil {
		return nil, err
	}
	offers := board.Offers()
	var keys []string
	for k, w := range wheres {
		if offers.Satisfies(w) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	if s.postgres {
		return s.leaseSkipLocked(ctx, board, keys, ttl)
	}
	s.leasing.Lock()
	defer s.leasing.Unlock()
	for try := 0; try < 20; try++ {
		now := time.Now()
		type head struct {
			id       string
			priority int
			created  int64
		}
		var best *head
		for _, k := range keys {
			var h head
			err := s.db.QueryRowContext(ctx, s.bind(`SELECT id, priority, created FROM lab_requests WHERE state = ? AND wkey = ? AND not_before <= ?
				ORDER BY priority DESC, created, id LIMIT 1`), StateQueued, k, micros(now)).Scan(&h.id, &h.priority, &h.created)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if best == nil || h.priority > best.priority || (h.priority == best.priority && (h.created < best.created || h.created == best.created && h.id < best.id)) {
				best = &h
			}
		}
		if best == nil {
			return nil, nil
		}
		lease := random(24)
		expires := now.Add(ttl)
		n, err := s.exec(ctx, `UPDATE lab_requests SET state = ?, attempt = attempt + 1, lease = ?, lab = ?, board = ?, expires = ?, started = ?, not_before = 0
			WHERE id = ? AND state = ?`, StateRunning, lease, board.Lab, board.Name, micros(expires), micros(now), best.id, StateQueued)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue // another board took it first
		}
		return s.leased(ctx, board, best.id, lease, expires)
	}
	return nil, nil
}

func (s *Store) leased(ctx context.Context, board Board, id, lease string, expires time.Time) (*Lease, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	s.exec(ctx, `UPDATE lab_boards SET running = ? WHERE name = ?`, r.ID, board.Name)
	return &Lease{ID: lease, Request: r, Attempt: r.Attempt, Expires: expires}, nil
}

// leaseSkipLocked is Lease on PostgreSQL: the head of each matching queue
// is locked, skipping rows other leases are taking (several central
// servers on one database), and the best one is leased in the same
// transaction.
func (s *Store) leaseSkipLocked(ctx context.Context, board Board, keys []string, ttl time.Duration) (*Lease, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := time.Now()
	var best struct {
		id       string
		priority int
		created  int64
	}
	for _, k := range keys {
		var id string
		var priority int
		var created int64
		err := tx.QueryRowContext(ctx, s.bind(`SELECT id, priority, created FROM lab_requests WHERE state = ? AND wkey = ? AND not_before <= ?
			ORDER BY priority DESC, created, id LIMIT 1 FOR UPDATE SKIP LOCKED`), StateQueued, k, micros(now)).Scan(&id, &priority, &created)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if best.id == "" || priority > best.priority || (priority == best.priority && (created < best.created || created == best.created && id < best.id)) {
			best.id, best.priority, best.created = id, priority, created
		}
	}
	if best.id == "" {
		return nil, nil
	}
	lease, expires := random(24), now.Add(ttl)
	if _, err := tx.ExecContext(ctx, s.bind(`UPDATE lab_requests SET state = ?, attempt = attempt + 1, lease = ?, lab = ?, board = ?, expires = ?, started = ?, not_before = 0
		WHERE id = ? AND state = ?`), StateRunning, lease, board.Lab, board.Name, micros(expires), micros(now), best.id, StateQueued); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return s.leased(ctx, board, best.id, lease, expires)
}

// byLease reads the request a lease is (or was) on, checking it is lab's.
func (s *Store) byLease(ctx context.Context, lab, lease string) (Request, error) {
	if lease == "" {
		return Request{}, ErrLeaseGone
	}
	r, err := scanRequest(s.db.QueryRowContext(ctx, s.bind("SELECT "+requestColumns+" FROM lab_requests WHERE lease = ?"), lease))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrLeaseGone
	}
	if err != nil {
		return r, err
	}
	if r.Lab != lab {
		return r, fmt.Errorf("lease of request %s: %w", r.ID, ErrNotYours)
	}
	return r, nil
}

// Renew extends a live lease of lab's.
func (s *Store) Renew(ctx context.Context, lab, lease string, ttl time.Duration) (Request, error) {
	r, err := s.byLease(ctx, lab, lease)
	if err != nil {
		return r, err
	}
	now := time.Now()
	n, err := s.exec(ctx, `UPDATE lab_requests SET expires = ? WHERE lease = ? AND lab = ? AND state = ? AND expires >= ?`,
		micros(now.Add(ttl)), lease, lab, StateRunning, micros(now))
	if err != nil {
		return r, err
	}
	if n == 0 {
		return r, ErrLeaseGone
	}
	exp := now.Add(ttl).UTC()
	r.Expires = &exp
	return r, nil
}

// Live tells whether lab holds a live lease on request id's attempt.
func (s *Store) Live(ctx context.Context, lab, id string, attempt int) bool {
	var n int
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM lab_requests WHERE id = ? AND lab = ? AND attempt = ? AND state = ? AND expires >= ?`),
		id, lab, attempt, StateRunning, micros(time.Now())).Scan(&n)
	return err == nil && n == 1
}

// BeginReport takes a live lease's run: the request is reporting and can no
// longer expire under it. A lease already reporting (the lab sent its run
// again after losing the answer) is taken again; ErrFinished says the run
// was reported already.
func (s *Store) BeginReport(ctx context.Context, lab, lease string) (Request, error) {
	r, err := s.byLease(ctx, lab, lease)
	if err != nil {
		return r, err
	}
	switch r.State {
	case StateReporting:
		return r, nil
	case StateFinished, StateCrashed, StateAborted:
		return r, ErrFinished
	}
	n, err := s.exec(ctx, `UPDATE lab_requests SET state = ? WHERE lease = ? AND lab = ? AND state = ? AND expires >= ?`,
		StateReporting, lease, lab, StateRunning, micros(time.Now()))
	if err != nil {
		return r, err
	}
	if n == 0 {
		return r, ErrLeaseGone
	}
	r.State = StateReporting
	return r, nil
}

// Outcome is how a request ended.
type Outcome struct {
	State   string
	Outcome string
	Reason  string
	Results int
}

// Complete ends a reporting (or, handed back for the last time, running)
// request.
func (s *Store) Complete(ctx context.Context, r Request, o Outcome) error {
	n, err := s.exec(ctx, `UPDATE lab_requests SET state = ?, outcome = ?, reason = ?, results = ?, finished = ? WHERE id = ? AND lease = ? AND state IN (?, ?)`,
		o.State, o.Outcome, o.Reason, o.Results, micros(time.Now()), r.ID, r.lease, StateReporting, StateRunning)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrLeaseGone
	}
	s.clearBoard(ctx, r.Board, r.ID)
	return nil
}

// Requeue puts a running or reporting request back in the queue, to be
// taken no earlier than notBefore; its attempt stays counted.
func (s *Store) Requeue(ctx context.Context, r Request, notBefore time.Time, reason string) error {
	n, err := s.exec(ctx, `UPDATE lab_requests SET state = ?, lease = '', not_before = ?, reason = ?, expires = NULL WHERE id = ? AND lease = ? AND state IN (?, ?)`,
		StateQueued, micros(notBefore), reason, r.ID, r.lease, StateRunning, StateReporting)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrLeaseGone
	}
	s.clearBoard(ctx, r.Board, r.ID)
	return nil
}

// TakeExpired moves leases that were not renewed in time to reporting under
// the central server (their lab is gone), and returns them: the caller puts
// each back in the queue or ends it. Requests left reporting for longer
// than stale (a central server that stopped mid-report) are returned too.
func (s *Store) TakeExpired(ctx context.Context, stale time.Duration) ([]Request, error) {
	now := time.Now()
	rs, err := s.requests(ctx, "SELECT "+requestColumns+` FROM lab_requests WHERE (state = ? AND expires < ?) OR (state = ? AND expires < ?) LIMIT 500`,
		StateRunning, micros(now), StateReporting, micros(now.Add(-stale)))
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, r := range rs {
		// A fresh lease name: the lab that lost it can no longer use it.
		taken := "expired-" + random(12)
		n, err := s.exec(ctx, `UPDATE lab_requests SET state = ?, lease = ?, expires = ? WHERE id = ? AND lease = ? AND state = ?`,
			StateReporting, taken, micros(now), r.ID, r.lease, r.State)
		if err != nil {
			return out, err
		}
		if n == 1 {
			r.lease, r.State = taken, StateReporting
			out = append(out, r)
		}
	}
	return out, nil
}

func scanBoard(row interface{ Scan(...any) error }) (Board, error) {
	var b Board
	var labels string
	var created int64
	var seen sql.NullInt64
	if err := row.Scan(&b.Name, &b.Lab, &labels, &created, &seen, &b.Running, &b.Agent); err != nil {
		return b, err
	}
	b.Labels = Labels{}
	if err := json.Unmarshal([]byte(labels), &b.Labels); err != nil {
		return b, fmt.Errorf("board %s: labels: %w", b.Name, err)
	}
	b.Created, b.LastSeen = time.UnixMicro(created).UTC(), fromMicros(seen)
	return b, nil
}

const boardColumns = `name, lab, labels, created, last_seen, running, agent`

// Board reads one board.
func (s *Store) Board(ctx context.Context, name string) (Board, error) {
	b, err := scanBoard(s.db.QueryRowContext(ctx, s.bind("SELECT "+boardColumns+" FROM lab_boards WHERE name = ?"), name))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("board %s: %w", name, ErrNotFound)
	}
	return b, err
}

// Boards lists the boards by lab and name.
func (s *Store) Boards(ctx context.Context) ([]Board, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+boardColumns+" FROM lab_boards ORDER BY lab, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Board{}
	for rows.Next() {
		b, err := scanBoard(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// PutBoard adds a board or replaces its labels. A board of another lab
// is not taken over.
func (s *Store) PutBoard(ctx context.Context, b Board) (Board, error) {
	return s.upsertBoard(ctx, b, false)
}

// Seen records that the board's agent asked for work now; labels, when it
// gave some, replace the board's (else those put before stay).
func (s *Store) Seen(ctx context.Context, b Board) (Board, error) {
	return s.upsertBoard(ctx, b, true)
}

func (s *Store) upsertBoard(ctx context.Context, b Board, seen bool) (Board, error) {
	old, err := s.Board(ctx, b.Name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return b, err
	case old.Lab != b.Lab:
		return old, fmt.Errorf("board %s belongs to lab %s: %w", b.Name, old.Lab, ErrNotYours)
	}
	if b.Labels == nil {
		b.Labels = old.Labels
	}
	if b.Labels == nil {
		b.Labels = Labels{}
	}
	raw, _ := json.Marshal(b.Labels)
	now := micros(time.Now())
	var lastSeen any
	if seen {
		lastSeen = now
	}
	_, err = s.exec(ctx, `INSERT INTO lab_boards (name, lab, labels, created, last_seen, agent) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, last_seen = COALESCE(excluded.last_seen, lab_boards.last_seen),
		agent = CASE WHEN excluded.agent <> '' THEN excluded.agent ELSE lab_boards.agent END`,
		b.Name, b.Lab, string(raw), now, lastSeen, b.Agent)
	if err != nil {
		return b, err
	}
	return s.Board(ctx, b.Name)
}

// RemoveBoard deletes a board (of lab, unless lab is empty: an admin).
func (s *Store) RemoveBoard(ctx context.Context, name, lab string) error {
	b, err := s.Board(ctx, name)
	if err != nil {
		return err
	}
	if lab != "" && b.Lab != lab {
		return fmt.Errorf("board %s belongs to lab %s: %w", name, b.Lab, ErrNotYours)
	}
	_, err = s.exec(ctx, `DELETE FROM lab_boards WHERE name = ?`, name)
	return err
}

// Prune deletes the requests that ended before the given time; it returns
// how many.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM lab_requests WHERE state IN (?, ?, ?, ?) AND finished < ?`,
		StateFinished, StateCrashed, StateAborted, StateCancelled, micros(before))
	return int(n), err
}
