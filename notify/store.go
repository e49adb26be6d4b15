package notify

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
	"strconv"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/sqldb"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"
)

// Notification states in the outbox. A notification for a
// regressions-only subscription waits in check until ResultsDB said
// whether its result is a regression; then it is pending (or not-regression,
// kept for dedup). Pending ones are delivered and become sent; sent rows
// stay a while so that an event delivered again repeats nothing.
const (
	StateCheck         = "check"
	StatePending       = "pending"
	StateSent          = "sent"
	StateNotRegression = "not-regression"
)

// ErrNotFound is a subscription that is not there.
var ErrNotFound = errors.New("no such subscription")

// Notification is one result owed to one subscription.
type Notification struct {
	ID     int64 `json:"-"`
	Sub    int64 `json:"subscription"`
	Result Result
	// Previous is the result this one regressed from, for a regression.
	Previous *Result
	Created  time.Time
}

// Key is the notification's dedup key, also the delivery id a webhook
// receiver sees: the same on every attempt.
func (n Notification) Key() string { return key(n.Sub, n.Result.ID) }

func key(sub, result int64) string {
	return strconv.FormatInt(sub, 10) + "-" + strconv.FormatInt(result, 10)
}

// Store keeps subscriptions and the outbox of notifications in SQLite or
// PostgreSQL, in tables of its own (notify_*).
type Store struct {
	db       *sql.DB
	postgres bool
}

// Open opens (creating its tables when needed) the store named by dsn:
// "sqlite:PATH" or "postgres://…".
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if s.db, s.postgres, err = sqldb.Open(dsn, "notify database", "FULL"); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("notify database: %w", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.postgres {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS notify_subscriptions (
			id ` + serial + `, email TEXT NOT NULL DEFAULT '', webhook TEXT NOT NULL DEFAULT '', secret TEXT NOT NULL DEFAULT '',
			item TEXT NOT NULL DEFAULT '', testcase TEXT NOT NULL DEFAULT '', outcomes TEXT NOT NULL DEFAULT '',
			origin TEXT NOT NULL DEFAULT '', regressions INTEGER NOT NULL DEFAULT 0, created BIGINT NOT NULL,
			failures INTEGER NOT NULL DEFAULT 0, next_retry BIGINT, last_error TEXT NOT NULL DEFAULT '', last_ok BIGINT,
			confirmed BIGINT, confirm_hash TEXT NOT NULL DEFAULT '', expires BIGINT, unsub TEXT NOT NULL DEFAULT '')`,
		// confirm_hash is the SHA-256 of the token mailed to confirm a
		// subscription made on the page (the token itself is only in the
		// mail); unsub is the token of its unsubscribe links, which every
		// digest carries, so it is kept as it is.
		`CREATE INDEX IF NOT EXISTS notify_subscriptions_confirm_idx ON notify_subscriptions (confirm_hash)`,
		`CREATE INDEX IF NOT EXISTS notify_subscriptions_unsub_idx ON notify_subscriptions (unsub)`,
		`CREATE INDEX IF NOT EXISTS notify_subscriptions_email_idx ON notify_subscriptions (email)`,
		// dedup is the notification's key: a message delivered twice
		// inserts nothing the second time.
		`CREATE TABLE IF NOT EXISTS notify_outbox (
			id ` + serial + `, sub_id BIGINT NOT NULL, result_id BIGINT NOT NULL, dedup TEXT NOT NULL UNIQUE,
			state TEXT NOT NULL, created BIGINT NOT NULL, result TEXT NOT NULL, previous TEXT NOT NULL DEFAULT '',
			digest TEXT NOT NULL DEFAULT '', sent BIGINT)`,
		`CREATE INDEX IF NOT EXISTS notify_outbox_state_idx ON notify_outbox (state, sub_id, id)`,
		`CREATE INDEX IF NOT EXISTS notify_outbox_sent_idx ON notify_outbox (sent)`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// A table made before subscriptions were confirmed lacks the columns;
	// notify is unreleased, so such a store is made again, not migrated.
	if _, err := s.db.ExecContext(ctx, `SELECT confirmed, confirm_hash, expires, unsub FROM notify_subscriptions WHERE 1 = 0`); err != nil {
		return fmt.Errorf("notify_subscriptions was made by an older taskotron (no confirmation columns); remove that store: %w", err)
	}
	return nil
}

// bind turns ? placeholders into PostgreSQL's $n.
func (s *Store) bind(q string) string { return sqldb.Bind(s.postgres, q) }

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Add stores a prepared subscription, confirmed (the command line's), and
// sets its ID and creation time.
func (s *Store) Add(ctx context.Context, sub *Subscription) error {
	sub.Created = time.Now().UTC().Truncate(time.Microsecond)
	sub.Confirmed, sub.Expires = &sub.Created, nil
	sub.unsub = newToken()
	if err := s.insert(ctx, s.db, sub, ""); err != nil {
		return fmt.Errorf("store subscription: %w", err)
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) insert(ctx context.Context, q querier, sub *Subscription, confirmHash string) error {
	regs := 0
	if sub.Regressions {
		regs = 1
	}
	var confirmed, expires sql.NullInt64
	if sub.Confirmed != nil {
		confirmed = sql.NullInt64{Int64: micros(*sub.Confirmed), Valid: true}
	}
	if sub.Expires != nil {
		expires = sql.NullInt64{Int64: micros(*sub.Expires), Valid: true}
	}
	return q.QueryRowContext(ctx, s.bind(`INSERT INTO notify_subscriptions
		(email, webhook, secret, item, testcase, outcomes, origin, regressions, created, confirmed, confirm_hash, expires, unsub)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`),
		sub.Email, sub.Webhook, sub.secret, sub.Item, sub.Testcase, strings.Join(sub.Outcomes, ","), sub.Origin, regs, micros(sub.Created),
		confirmed, confirmHash, expires, sub.unsub).Scan(&sub.ID)
}

// newToken is a random token for a link: 128 bits, URL-safe.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// ErrTooManyPending refuses a subscription to an address that already
// has as many waiting for confirmation as allowed, or when the page's
// whole allowance of them is taken: the form cannot flood anyone.
var ErrTooManyPending = errors.New("too many subscriptions wait for confirmation")

// ErrBadToken is a confirmation or unsubscribe link that is not (or no
// longer) one of ours.
var ErrBadToken = errors.New("this link is not valid (any more)")

// Limits bound the subscriptions waiting for confirmation.
type Limits struct {
	// TTL is how long a subscription waits to be confirmed.
	TTL time.Duration
	// PerAddress is how many may wait for one address; Total for all.
	PerAddress, Total int
}

// AddPending stores a prepared email subscription that matches nothing
// until Confirm is given the token it returns (only the token's hash is
// kept). It refuses when lim is reached.
func (s *Store) AddPending(ctx context.Context, sub *Subscription, lim Limits) (string, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	exp := now.Add(lim.TTL)
	sub.Created, sub.Confirmed, sub.Expires = now, nil, &exp
	sub.unsub = newToken()
	token := newToken()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.postgres {
			// Two forms at once for one address must not both pass its
			// count (SQLite's transactions take the write lock at once).
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7201, hashtext($1))`, sub.Email); err != nil {
				return err
			}
		}
		var mine, all int
		if err := tx.QueryRowContext(ctx, s.bind(`SELECT COALESCE(SUM(CASE WHEN email = ? THEN 1 ELSE 0 END), 0), COUNT(*)
			FROM notify_subscriptions WHERE confirmed IS NULL AND expires > ?`), sub.Email, micros(now)).Scan(&mine, &all); err != nil {
			return err
		}
		if mine >= lim.PerAddress {
			return &FieldError{Field: "email", Err: fmt.Errorf("email %q: %d subscriptions already wait for confirmation; confirm them from their mails or wait until they expire: %w",
				sub.Email, mine, ErrTooManyPending)}
		}
		if all >= lim.Total {
			return fmt.Errorf("the page takes no more subscriptions for now (%d wait for confirmation): %w", all, ErrTooManyPending)
		}
		return s.insert(ctx, tx, sub, hashToken(token))
	})
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) || errors.Is(err, ErrTooManyPending) {
			return "", err
		}
		return "", fmt.Errorf("store subscription: %w", err)
	}
	return token, nil
}

// Confirm activates the subscription a confirmation token was mailed for.
// Confirming twice is no error; a token unknown or expired is ErrBadToken.
func (s *Store) Confirm(ctx context.Context, token string) (Subscription, error) {
	now := micros(time.Now())
	h := hashToken(token)
	if _, err := s.db.ExecContext(ctx, s.bind(`UPDATE notify_subscriptions SET confirmed = ?, expires = NULL
		WHERE confirm_hash = ? AND confirmed IS NULL AND expires > ?`), now, h, now); err != nil {
		return Subscription{}, fmt.Errorf("confirm subscription: %w", err)
	}
	sub, err := scanSub(s.db.QueryRowContext(ctx, s.bind(`SELECT `+subColumns+` FROM notify_subscriptions s WHERE s.confirm_hash = ? AND s.confirmed IS NOT NULL`), h))
	if errors.Is(err, sql.ErrNoRows) {
		return sub, ErrBadToken
	}
	return sub, err
}

// ByUnsubscribe is the subscriptions unsubscribe tokens are for; unknown
// tokens are left out.
func (s *Store) ByUnsubscribe(ctx context.Context, tokens []string) ([]Subscription, error) {
	var out []Subscription
	for _, t := range tokens {
		if t == "" {
			continue
		}
		sub, err := scanSub(s.db.QueryRowContext(ctx, s.bind(`SELECT `+subColumns+` FROM notify_subscriptions s WHERE s.unsub = ?`), t))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, nil
}

// Unsubscribe removes the subscriptions of unsubscribe tokens, and what
// they were owed; it returns those it removed.
func (s *Store) Unsubscribe(ctx context.Context, tokens []string) ([]Subscription, error) {
	subs, err := s.ByUnsubscribe(ctx, tokens)
	if err != nil {
		return nil, err
	}
	var gone []Subscription
	for _, sub := range subs {
		err := s.Remove(ctx, sub.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return gone, err
		}
		gone = append(gone, sub)
	}
	return gone, nil
}

// PruneUnconfirmed forgets subscriptions never confirmed whose time ran
// out.
func (s *Store) PruneUnconfirmed(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.bind(`DELETE FROM notify_subscriptions WHERE confirmed IS NULL AND expires <= ?`), micros(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Remove deletes a subscription and what it was still owed.
func (s *Store) Remove(ctx context.Context, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.bind(`DELETE FROM notify_subscriptions WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscription %d: %w", id, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, s.bind(`DELETE FROM notify_outbox WHERE sub_id = ?`), id)
		return err
	})
}

const subColumns = `s.id, s.email, s.webhook, s.secret, s.item, s.testcase, s.outcomes, s.origin, s.regressions, s.created,
	s.failures, s.next_retry, s.last_error, s.last_ok, s.confirmed, s.expires, s.unsub`

type scanner interface{ Scan(...any) error }

func scanSub(row scanner, extra ...any) (Subscription, error) {
	var sub Subscription
	var outcomes string
	var regs int
	var created int64
	var next, ok, confirmed, expires sql.NullInt64
	err := row.Scan(append([]any{&sub.ID, &sub.Email, &sub.Webhook, &sub.secret, &sub.Item, &sub.Testcase, &outcomes, &sub.Origin, &regs, &created,
		&sub.Failures, &next, &sub.LastError, &ok, &confirmed, &expires, &sub.unsub}, extra...)...)
	if err != nil {
		return sub, err
	}
	if outcomes != "" {
		sub.Outcomes = strings.Split(outcomes, ",")
	}
	sub.Regressions = regs != 0
	sub.Created = time.UnixMicro(created).UTC()
	sub.NextRetry, sub.LastDelivered = fromMicros(next), fromMicros(ok)
	sub.Confirmed, sub.Expires = fromMicros(confirmed), fromMicros(expires)
	if err := sub.compile(); err != nil {
		return sub, fmt.Errorf("subscription %d: %w", sub.ID, err)
	}
	return sub, nil
}

// List is every subscription (those waiting for confirmation too) with
// its delivery state and how many notifications it is owed, oldest first.
func (s *Store) List(ctx context.Context) ([]Subscription, error) { return s.list(ctx, true) }

// list reads the subscriptions, with the counts of what they are owed
// only when asked; matching an event (no counts) takes only the
// confirmed ones.
func (s *Store) list(ctx context.Context, counts bool) ([]Subscription, error) {
	count, where := "0", " WHERE s.confirmed IS NOT NULL"
	if counts {
		count, where = `(SELECT COUNT(*) FROM notify_outbox o WHERE o.sub_id = s.id AND o.state IN ('pending', 'check'))`, ""
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+subColumns+`, `+count+` FROM notify_subscriptions s`+where+` ORDER BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		var pending int
		sub, err := scanSub(rows, &pending)
		if err != nil {
			return nil, err
		}
		sub.Pending = pending
		out = append(out, sub)
	}
	return out, rows.Err()
}

// Get is one subscription.
func (s *Store) Get(ctx context.Context, id int64) (Subscription, error) {
	sub, err := scanSub(s.db.QueryRowContext(ctx, s.bind(`SELECT `+subColumns+` FROM notify_subscriptions s WHERE s.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return sub, fmt.Errorf("subscription %d: %w", id, ErrNotFound)
	}
	return sub, err
}

// Record stores, in one transaction, the notifications a result owes the
// subscriptions it matched. A notification recorded before (the same
// message delivered again) is not recorded twice. It returns how many are
// new.
func (s *Store) Record(ctx context.Context, r Result, subs []Subscription) (int, error) {
	if len(subs) == 0 {
		return 0, nil
	}
	body, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	now := micros(time.Now())
	n := 0
	err = s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, sub := range subs {
			state := StatePending
			if sub.Regressions {
				state = StateCheck
			}
			res, err := tx.ExecContext(ctx, s.bind(`INSERT INTO notify_outbox (sub_id, result_id, dedup, state, created, result)
				VALUES (?,?,?,?,?,?) ON CONFLICT (dedup) DO NOTHING`), sub.ID, r.ID, key(sub.ID, r.ID), state, now, string(body))
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k > 0 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record notifications of result %d: %w", r.ID, err)
	}
	return n, nil
}

func (s *Store) notifications(ctx context.Context, where string, limit int, args ...any) ([]Notification, error) {
	q := `SELECT id, sub_id, result, previous, created FROM notify_outbox WHERE ` + where + ` ORDER BY id`
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := s.db.QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var n Notification
		var body, prev string
		var created int64
		if err := rows.Scan(&n.ID, &n.Sub, &body, &prev, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &n.Result); err != nil {
			return nil, fmt.Errorf("notification %d: %w", n.ID, err)
		}
		if prev != "" {
			n.Previous = new(Result)
			if err := json.Unmarshal([]byte(prev), n.Previous); err != nil {
				return nil, fmt.Errorf("notification %d: %w", n.ID, err)
			}
		}
		n.Created = time.UnixMicro(created).UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}

// Checks are notifications waiting for ResultsDB's word on a regression.
func (s *Store) Checks(ctx context.Context, limit int) ([]Notification, error) {
	return s.notifications(ctx, `state = 'check'`, limit)
}

// Judge settles a check: with the result it regressed from, the
// notification is owed; without, it is not (and stays for dedup).
func (s *Store) Judge(ctx context.Context, id int64, previous *Result) error {
	state, prev := StateNotRegression, ""
	if previous != nil {
		raw, err := json.Marshal(previous)
		if err != nil {
			return err
		}
		state, prev = StatePending, string(raw)
	}
	// created restarts: the digest window counts from when it was known.
	_, err := s.db.ExecContext(ctx, s.bind(`UPDATE notify_outbox SET state = ?, previous = ?, created = ? WHERE id = ? AND state = 'check'`),
		state, prev, micros(time.Now()), id)
	return err
}

// FormDigests closes a digest for every address whose oldest waiting
// notification is window old, unless one of its digests still waits to
// be sent: every notification of the address waiting then goes into one
// message, whose id stays the same until it is sent.
func (s *Store) FormDigests(ctx context.Context, window time.Duration, now time.Time) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT s.email, MIN(o.created) FROM notify_outbox o JOIN notify_subscriptions s ON s.id = o.sub_id
		WHERE o.state = 'pending' AND o.digest = '' AND s.email <> '' GROUP BY s.email HAVING MIN(o.created) <= ?`), micros(now.Add(-window)))
	if err != nil {
		return 0, fmt.Errorf("read digests due: %w", err)
	}
	var emails []string
	for rows.Next() {
		var e string
		var min int64
		if err := rows.Scan(&e, &min); err != nil {
			rows.Close()
			return 0, err
		}
		emails = append(emails, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	formed := 0
	for _, e := range emails {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var open int
			if err := tx.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM notify_outbox o JOIN notify_subscriptions s ON s.id = o.sub_id
				WHERE o.state = 'pending' AND o.digest <> '' AND s.email = ?`), e).Scan(&open); err != nil {
				return err
			}
			if open > 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, s.bind(`UPDATE notify_outbox SET digest = ? WHERE state = 'pending' AND digest = ''
				AND sub_id IN (SELECT id FROM notify_subscriptions WHERE email = ?)`), uuid.NewString(), e)
			if err == nil {
				formed++
			}
			return err
		})
		if err != nil {
			return formed, fmt.Errorf("form the digest for %s: %w", e, err)
		}
	}
	return formed, nil
}

// Due is one delivery to make now: an email digest or a webhook's queue.
type Due struct {
	Email  string
	Digest string
	// Webhook is the subscription whose pending notifications go to its URL.
	Webhook  int64
	Failures int
}

// Due lists the deliveries whose target is not backing off at now.
func (s *Store) Due(ctx context.Context, now time.Time) ([]Due, error) {
	var out []Due
	rows, err := s.db.QueryContext(ctx, `SELECT s.email, o.digest, MAX(s.failures), MAX(COALESCE(s.next_retry, 0))
		FROM notify_outbox o JOIN notify_subscriptions s ON s.id = o.sub_id
		WHERE o.state = 'pending' AND o.digest <> '' AND s.email <> '' GROUP BY s.email, o.digest`)
	if err != nil {
		return nil, fmt.Errorf("read deliveries due: %w", err)
	}
	for rows.Next() {
		var d Due
		var next int64
		if err := rows.Scan(&d.Email, &d.Digest, &d.Failures, &next); err != nil {
			rows.Close()
			return nil, err
		}
		if next <= micros(now) {
			out = append(out, d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT s.id, s.failures, COALESCE(s.next_retry, 0) FROM notify_subscriptions s
		WHERE s.webhook <> '' AND EXISTS (SELECT 1 FROM notify_outbox o WHERE o.sub_id = s.id AND o.state = 'pending')`)
	if err != nil {
		return nil, fmt.Errorf("read deliveries due: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d Due
		var next int64
		if err := rows.Scan(&d.Webhook, &d.Failures, &next); err != nil {
			return nil, err
		}
		if next <= micros(now) {
			out = append(out, d)
		}
	}
	return out, rows.Err()
}

// Digest is the notifications of one digest, and the subscriptions they
// are for.
func (s *Store) Digest(ctx context.Context, digest string) ([]Notification, error) {
	return s.notifications(ctx, `state = 'pending' AND digest = ?`, 0, digest)
}

// Pending is the oldest notifications a subscription is owed.
func (s *Store) Pending(ctx context.Context, sub int64, limit int) ([]Notification, error) {
	return s.notifications(ctx, `state = 'pending' AND sub_id = ?`, limit, sub)
}

// Delivered marks notifications sent and their subscriptions healthy.
func (s *Store) Delivered(ctx context.Context, ids, subs []int64) error {
	now := micros(time.Now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, s.bind(`UPDATE notify_outbox SET state = 'sent', sent = ? WHERE id = ?`), now, id); err != nil {
				return err
			}
		}
		for _, id := range subs {
			if _, err := tx.ExecContext(ctx, s.bind(`UPDATE notify_subscriptions SET failures = 0, next_retry = NULL, last_error = '', last_ok = ? WHERE id = ?`), now, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Failed records a failed delivery to subscriptions: how many in a row,
// when to try again, and why.
func (s *Store) Failed(ctx context.Context, subs []int64, failures int, next time.Time, reason string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range subs {
			if _, err := tx.ExecContext(ctx, s.bind(`UPDATE notify_subscriptions SET failures = ?, next_retry = ?, last_error = ? WHERE id = ?`),
				failures, micros(next), reason, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// SubsOf lists the confirmed subscriptions of an address.
func (s *Store) SubsOf(ctx context.Context, email string) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT id FROM notify_subscriptions WHERE email = ? AND confirmed IS NOT NULL ORDER BY id`), email)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Prune forgets notifications sent (or judged no regression) before
// the given time: long after any repeat of their message.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.bind(`DELETE FROM notify_outbox WHERE state IN ('sent', 'not-regression') AND COALESCE(sent, created) < ?`), micros(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Counts is how many notifications are in each state.
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM notify_outbox GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{StateCheck: 0, StatePending: 0, StateSent: 0, StateNotRegression: 0}
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
