package resultsdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// An origin is a system that submits results (a CI system, a lab, this
// Taskotron): every result records its origin, and each origin writes
// with tokens of its own, so one system can be cut off without touching
// the others. The names follow KCIDB's origins, so that the origin of a
// KCIDB submission and of its ids ("origin:…") is the origin of its token.

// DefaultOrigin is the origin of results written with resultsdb.token or
// without any token, and of results stored before origins were recorded
// (migration 5).
const DefaultOrigin = "taskotron"

// OriginTokenPrefix starts every origin token, so that one found in a log
// or a file can be told for what it is.
const OriginTokenPrefix = "trdb_"

var originRE = regexp.MustCompile(`^[a-z0-9_]{1,100}$`)

// CheckOrigin says what is wrong with an origin's name: KCIDB's rule,
// lower-case letters, digits and '_'.
func CheckOrigin(name string) error {
	if !originRE.MatchString(name) {
		return fmt.Errorf("origin %s: use lower-case letters, digits and '_' (1 to 100), as KCIDB origins", pyRepr(prefix(name)))
	}
	return nil
}

var (
	// ErrBadToken is a token no origin has.
	ErrBadToken = errors.New("the token is not known")
	// ErrRevokedToken is a token that was revoked.
	ErrRevokedToken = errors.New("the token was revoked")
)

// OriginToken describes one token (never its secret).
type OriginToken struct {
	ID      string
	Origin  string
	Created time.Time
	Revoked *time.Time
}

// TokenStore keeps the origins' write tokens: the server checks them,
// `taskotron resultsdb token` manages them. The SQL store is one.
type TokenStore interface {
	// AddToken makes a token for origin and returns it whole, the only
	// time it is seen: only a hash of its secret is kept.
	AddToken(ctx context.Context, origin string) (OriginToken, string, error)
	// RevokeTokens revokes origin's live tokens, or only the one with id
	// when id is not empty; it returns how many it revoked.
	RevokeTokens(ctx context.Context, origin, id string) (int, error)
	// Tokens lists every token, by origin and creation.
	Tokens(ctx context.Context) ([]OriginToken, error)
	// TokenOrigin names the origin of a live token.
	TokenOrigin(ctx context.Context, token string) (string, error)
}

// splitToken reads trdb_<id>_<secret>.
func splitToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, OriginTokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

func secretHash(secret string) string {
	// A secret is 256 random bits: a plain SHA-256 is as hard to reverse as
	// a slow password hash would be, and costs nothing on every post.
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) AddToken(ctx context.Context, origin string) (OriginToken, string, error) {
	if err := CheckOrigin(origin); err != nil {
		return OriginToken{}, "", err
	}
	idBytes := make([]byte, 6)
	secretBytes := make([]byte, 32)
	if _, err := rand.Read(idBytes); err != nil {
		return OriginToken{}, "", fmt.Errorf("make token: %w", err)
	}
	if _, err := rand.Read(secretBytes); err != nil {
		return OriginToken{}, "", fmt.Errorf("make token: %w", err)
	}
	t := OriginToken{ID: hex.EncodeToString(idBytes), Origin: origin, Created: fromMicros(micros(time.Now()))}
	secret := base64.RawURLEncoding.EncodeToString(secretBytes)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.bind("INSERT INTO origin_token (id, origin, secret_sha256, created) VALUES (?, ?, ?, ?)"),
			t.ID, origin, secretHash(secret), micros(t.Created))
		return err
	})
	if err != nil {
		return OriginToken{}, "", fmt.Errorf("store token of origin %s: %w", origin, err)
	}
	return t, OriginTokenPrefix + t.ID + "_" + secret, nil
}

func (s *sqlStore) RevokeTokens(ctx context.Context, origin, id string) (int, error) {
	q := "UPDATE origin_token SET revoked = ? WHERE origin = ? AND revoked IS NULL"
	args := []any{micros(time.Now()), origin}
	if id != "" {
		q += " AND id = ?"
		args = append(args, id)
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.bind(q), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of origin %s: %w", origin, err)
	}
	return int(n), nil
}

func (s *sqlStore) Tokens(ctx context.Context) ([]OriginToken, error) {
	out := []OriginToken{}
	err := s.each(ctx, "SELECT id, origin, created, revoked FROM origin_token ORDER BY origin, created, id", nil, func(rows *sql.Rows) error {
		var t OriginToken
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&t.ID, &t.Origin, &created, &revoked); err != nil {
			return err
		}
		t.Created = fromMicros(created)
		if revoked.Valid {
			r := fromMicros(revoked.Int64)
			t.Revoked = &r
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func (s *sqlStore) TokenOrigin(ctx context.Context, token string) (string, error) {
	id, secret, ok := splitToken(token)
	if !ok {
		return "", ErrBadToken
	}
	var origin, hash string
	var revoked sql.NullInt64
	err := s.read.QueryRowContext(ctx, s.d.bind("SELECT origin, secret_sha256, revoked FROM origin_token WHERE id = ?"), id).Scan(&origin, &hash, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", ErrBadToken
	case err != nil:
		return "", fmt.Errorf("look up token: %w", err)
	}
	// The id only finds the row; the secret is what proves the holder, and
	// comparing it in constant time tells an attacker nothing of the hash.
	if subtle.ConstantTimeCompare([]byte(secretHash(secret)), []byte(hash)) != 1 {
		return "", ErrBadToken
	}
	if revoked.Valid {
		return "", ErrRevokedToken
	}
	return origin, nil
}
