package resultsdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// withToken is a client of the same server sending another bearer token.
func (c *client) withToken(token string) *client {
	d := *c
	d.token = token
	return &d
}

func origins(t *testing.T, list []map[string]any) []string {
	t.Helper()
	out := make([]string, len(list))
	for i, m := range list {
		out[i], _ = m["origin"].(string)
	}
	return out
}

// Each origin writes with tokens of its own, only its own results; the
// configured token writes the default origin's; results show and filter
// by origin; a revoked token writes no more.
func TestOriginTokens(t *testing.T) {
	eachStore(t, Options{Origins: true, Token: "the-old-token"}, func(t *testing.T, c *client, store Store) {
		ctx := t.Context()
		ta, secretA, err := store.AddToken(ctx, "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		_, secretA2, err := store.AddToken(ctx, "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		_, secretB, err := store.AddToken(ctx, "ci_b")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secretA, OriginTokenPrefix+ta.ID+"_") || ta.Origin != "ci_a" {
			t.Fatalf("token %q for %+v", secretA, ta)
		}
		a, a2, b, old := c.withToken(secretA), c.withToken(secretA2), c.withToken(secretB), c.withToken("the-old-token")

		ra := a.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "foo-1-1.fc40", "koji_build", nil))
		rb := b.mustPost("/api/v2.0/results", post("FAILED", "dist.rpmlint", "foo-1-1.fc40", "koji_build", nil))
		named := post("PASSED", "dist.rpmlint", "bar-1-1.fc40", "koji_build", nil)
		named["origin"] = "ci_a"
		ra2 := a2.mustPost("/api/v2.0/results", named)
		rold := old.mustPost("/api/v2.0/results", post("INFO", "dist.rpmlint", "foo-1-1.fc40", "koji_build", nil))
		if ra["origin"] != "ci_a" || rb["origin"] != "ci_b" || ra2["origin"] != "ci_a" || rold["origin"] != DefaultOrigin {
			t.Errorf("origins of the posts: %v %v %v %v", ra["origin"], rb["origin"], ra2["origin"], rold["origin"])
		}
		if got := c.get(fmt.Sprintf("/api/v2.0/results/%v", ra["id"])).json(t)["origin"]; got != "ci_a" {
			t.Errorf("GET result: origin %v", got)
		}

		// A token writes only its origin's results.
		for _, w := range []struct {
			c      *client
			origin string
			want   string
		}{
			{a, "ci_b", "Forbidden: this token writes results of origin 'ci_a' only, not of origin 'ci_b'; origin 'ci_b' needs a token of its own (taskotron resultsdb token add ci_b)"},
			{old, "ci_a", "Forbidden: this token writes results of origin 'taskotron' only, not of origin 'ci_a'"},
		} {
			body := post("PASSED", "dist.rpmlint", "x-1-1", "koji_build", nil)
			body["origin"] = w.origin
			r := w.c.post("/api/v2.0/results", body)
			if r.code != http.StatusForbidden || !strings.HasPrefix(r.message(t), w.want) {
				t.Errorf("post naming origin %s: %d %s\nwant 403 %s", w.origin, r.code, r.body, w.want)
			}
		}
		body := post("PASSED", "dist.rpmlint", "x-1-1", "koji_build", nil)
		body["origin"] = 7
		if r := a.post("/api/v2.0/results", body); r.code != 400 || r.message(t) != "Malformed Request: origin must be a string or null, not a number" {
			t.Errorf("origin 7: %d %s", r.code, r.body)
		}

		// Tokens that are not: 401, with what is wrong.
		for _, bad := range []struct{ token, want string }{
			{"", "Authorization required: send 'Authorization: Bearer <token>'"},
			{"nonsense", "Invalid bearer token"},
			{OriginTokenPrefix + ta.ID + "_wrongsecret", "Invalid bearer token"},
			{OriginTokenPrefix + "000000000000_" + strings.Split(secretA, "_")[2], "Invalid bearer token"},
		} {
			if r := c.withToken(bad.token).post("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r.code != 401 || r.message(t) != bad.want {
				t.Errorf("token %q: %d %s, want 401 %s", bad.token, r.code, r.body, bad.want)
			}
		}

		// origin= filters, a comma list as the other filters.
		for q, want := range map[string]int{"origin=ci_a": 2, "origin=ci_b": 1, "origin=ci_a,taskotron": 3, "origin=nobody": 0, "origin=ci_a&item=bar-1-1.fc40": 1, "": 4} {
			list := c.get("/api/v2.0/results?" + q).list(t)
			if len(list) != want {
				t.Errorf("%s: %d results, want %d", q, len(list), want)
			}
			for _, o := range origins(t, list) {
				if q != "" && !strings.Contains(q, o) {
					t.Errorf("%s: a result of origin %s", q, o)
				}
			}
		}
		// The latest of ci_b's results, though ci_a's is newer.
		latest := c.get("/api/v2.0/results/latest?origin=ci_b").list(t)
		if len(latest) != 1 || latest[0]["id"] != rb["id"] {
			t.Errorf("latest of ci_b: %v", ids(t, latest))
		}
		if latest := c.get("/api/v2.0/results/latest?origin=ci_a&_distinct_on=item").list(t); len(latest) != 2 {
			t.Errorf("latest of ci_a per item: %v", ids(t, latest))
		}
		// The results page filters and shows the origin too.
		page := c.get("/results?origin=ci_b")
		if page.code != 200 || !strings.Contains(page.text(), `<td class="origin">ci_b</td>`) || strings.Contains(page.text(), `<td class="origin">ci_a</td>`) ||
			!strings.Contains(page.text(), `name="origin" value="ci_b"`) {
			t.Errorf("results page for origin ci_b: %d\n%s", page.code, page.text())
		}

		// A token id revokes only under its own origin.
		if n, err := store.RevokeTokens(ctx, "ci_b", ta.ID); err != nil || n != 0 {
			t.Errorf("revoke ci_a's token as ci_b's: %d %v, want none", n, err)
		}
		// Revoking one token leaves the other; revoking the origin, none.
		if n, err := store.RevokeTokens(ctx, "ci_a", ta.ID); err != nil || n != 1 {
			t.Fatalf("revoke %s: %d %v", ta.ID, n, err)
		}
		if r := a.post("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r.code != 401 || r.message(t) != "Invalid bearer token: it was revoked" {
			t.Errorf("revoked token: %d %s", r.code, r.body)
		}
		a2.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil))
		if n, err := store.RevokeTokens(ctx, "ci_a", ""); err != nil || n != 1 {
			t.Fatalf("revoke ci_a: %d %v", n, err)
		}
		if r := a2.post("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r.code != 401 {
			t.Errorf("token of a revoked origin: %d %s", r.code, r.body)
		}
		b.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil))

		list, err := store.Tokens(ctx)
		if err != nil || len(list) != 3 {
			t.Fatalf("tokens: %v %v", list, err)
		}
		live := 0
		for _, tok := range list {
			if tok.Revoked == nil {
				live++
			}
		}
		if live != 1 || list[0].Origin != "ci_a" || list[2].Origin != "ci_b" {
			t.Errorf("tokens %+v: want ci_a's two revoked, ci_b's live", list)
		}

		// The database holds hashes, never the secrets.
		sq := store.(*sqlStore)
		var n int
		for _, secret := range []string{secretA, secretA2, secretB} {
			_, part, _ := strings.Cut(strings.TrimPrefix(secret, OriginTokenPrefix), "_")
			if err := sq.read.QueryRowContext(ctx, sq.d.bind("SELECT COUNT(*) FROM origin_token WHERE secret_sha256 = ? OR secret_sha256 = ?"), secret, part).Scan(&n); err != nil || n != 0 {
				t.Errorf("a secret is stored as is: %d %v", n, err)
			}
		}
		if _, _, err := store.AddToken(ctx, "Not-An-Origin"); err == nil {
			t.Error("AddToken took the origin name Not-An-Origin")
		}
	})
}

// Without a configured token writes stay open, for the default origin;
// origin tokens still write their own, and a wrong token is refused.
func TestOriginsOpenWrites(t *testing.T) {
	eachStore(t, Options{Origins: true, Origin: "fedora_ci"}, func(t *testing.T, c *client, store Store) {
		_, secret, err := store.AddToken(t.Context(), "ci_a")
		if err != nil {
			t.Fatal(err)
		}
		if r := c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r["origin"] != "fedora_ci" {
			t.Errorf("open write: origin %v, want the configured fedora_ci", r["origin"])
		}
		if r := c.withToken(secret).mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r["origin"] != "ci_a" {
			t.Errorf("token write: origin %v", r["origin"])
		}
		body := post("PASSED", "dist.rpmlint", "x", "koji_build", nil)
		body["origin"] = "ci_a"
		if r := c.post("/api/v2.0/results", body); r.code != 403 || !strings.HasPrefix(r.message(t), "Forbidden: writes without a token are results of origin 'fedora_ci' only") {
			t.Errorf("open write naming ci_a: %d %s", r.code, r.body)
		}
		if r := c.withToken("trdb_nope_nope").post("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r.code != 401 {
			t.Errorf("unknown origin token on an open server: %d %s", r.code, r.body)
		}
		// A token that claims no origin is ignored, as before origins.
		if r := c.withToken("some-reporter-token").mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", nil)); r["origin"] != "fedora_ci" {
			t.Errorf("open write with another token: origin %v", r["origin"])
		}
	})
}

// Without Origins, the answers are ResultsDB 2.2's: no origin key, and
// origin= is a data filter as there; the results still record the
// default origin.
func TestWithoutOriginsAsResultsDB(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, c *client, store Store) {
		r := c.mustPost("/api/v2.0/results", post("PASSED", "dist.rpmlint", "x", "koji_build", map[string]any{"origin": "bodhi"}))
		if _, ok := r["origin"]; ok {
			t.Errorf("result JSON has an origin key: %v", r)
		}
		if list := c.get("/api/v2.0/results?origin=bodhi").list(t); len(list) != 1 {
			t.Errorf("origin=bodhi as a data filter: %d results", len(list))
		}
		if list := c.get("/api/v2.0/results?origin=taskotron").list(t); len(list) != 0 {
			t.Errorf("origin=taskotron as a data filter: %d results", len(list))
		}
		got, err := store.Result(t.Context(), int64(r["id"].(float64)))
		if err != nil || got.Origin != DefaultOrigin {
			t.Errorf("stored origin %q %v", got.Origin, err)
		}
	})
}

// A database from before origins (schema version 4) upgrades: its
// results get the default origin and are found by it.
func TestOriginMigration(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			saved := migrations
			migrations = migrations[:4]
			old, dsn := openTestStoreDSN(t, kind)
			migrations = saved
			sq := old.(*sqlStore)
			ctx := t.Context()
			err := sq.tx(ctx, func(tx *sql.Tx) error {
				for _, q := range []string{
					"INSERT INTO testcase (name) VALUES ('dist.rpmlint')",
					"INSERT INTO result (testcase_name, submit_time, outcome) VALUES ('dist.rpmlint', 1700000000000000, 'PASSED')",
					"INSERT INTO result_data (result_id, key, value) VALUES (1, 'item', 'old-1-1.fc39')",
				} {
					if _, err := tx.ExecContext(ctx, q); err != nil {
						return fmt.Errorf("%s: %w", q, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			old.Close()

			store, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatalf("open the old database: %v", err)
			}
			defer store.Close()
			got, err := store.Result(ctx, 1)
			if err != nil || got.Origin != DefaultOrigin || got.Data[0].Value != "old-1-1.fc39" {
				t.Fatalf("old result after the upgrade: %+v %v", got, err)
			}
			list, err := store.Results(ctx, ResultQuery{Origins: []string{DefaultOrigin}})
			if err != nil || len(list) != 1 {
				t.Errorf("old results by origin: %v %v", list, err)
			}
			if _, _, err := store.AddToken(ctx, "ci_a"); err != nil {
				t.Errorf("token table after the upgrade: %v", err)
			}
		})
	}
}
