package resultsdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// insertPostgres is a batch of results written in one statement on
// PostgreSQL: its testcases and groups created or updated, its results
// numbered and inserted with their group links, data and events. Each
// table's rows travel as arrays, one per column, so that one prepared
// statement serves every batch, and outside a transaction the statement is
// its own: one round trip and one commit per batch.
//
// Every part of the statement sees the database as it was when it began,
// so that a batch's results do not see one another's changes to a
// testcase or group: those are folded in Go first, in the order the results
// were posted (the last result to set a field wins, as if each had been
// written alone). A group another writer creates after the statement began
// leaves a link without its group, which the NOT NULL of
// result_group.group_id refuses, and the batch is written again (retryable).
// Rows whose identity tells their order (a result's data values, events)
// are inserted in the order of the arrays, whatever join the plan picks.
//
// $1 the number of results; testcases: $2 names, $3/$4 what and whether
// ref_url; groups: $5 uuids, $6/$7 whether and what description, $8/$9
// whether and what ref_url; results: $10-$15 the columns; links: $16
// result (1-based), $17 uuid; data: $18 result, $19 key, $20 value;
// events: $21 result, $22 when queued. It answers each result's id (n > 0)
// and the testcases as they were (n = 0).
const insertPostgres = `WITH ids AS MATERIALIZED (
	SELECT n, nextval(pg_get_serial_sequence('result', 'id')) AS id FROM generate_series(1, $1::bigint) AS n
), old_tc AS (
	SELECT name, ref_url FROM testcase WHERE name = ANY($2::text[])
), set_tc AS (
	UPDATE testcase t SET ref_url = u.ref_url FROM unnest($2::text[], $3::text[], $4::bool[]) AS u(name, ref_url, set)
	WHERE t.name = u.name AND u.set AND t.ref_url IS DISTINCT FROM u.ref_url
), new_tc AS (
	INSERT INTO testcase (name, ref_url) SELECT u.name, u.ref_url FROM unnest($2::text[], $3::text[]) AS u(name, ref_url)
	WHERE NOT EXISTS (SELECT FROM old_tc WHERE old_tc.name = u.name)
	ON CONFLICT (name) DO NOTHING
), old_g AS (
	SELECT id, uuid FROM run_group WHERE uuid = ANY($5::text[])
), set_g AS (
	UPDATE run_group g SET description = CASE WHEN u.set_desc THEN u.description ELSE g.description END,
		ref_url = CASE WHEN u.set_ref THEN u.ref_url ELSE g.ref_url END
	FROM unnest($5::text[], $6::bool[], $7::text[], $8::bool[], $9::text[]) AS u(uuid, set_desc, description, set_ref, ref_url)
	WHERE g.uuid = u.uuid AND (u.set_desc AND g.description IS DISTINCT FROM u.description OR u.set_ref AND g.ref_url IS DISTINCT FROM u.ref_url)
), new_g AS (
	INSERT INTO run_group (uuid, description, ref_url)
	SELECT u.uuid, u.description, u.ref_url FROM unnest($5::text[], $7::text[], $9::text[]) AS u(uuid, description, ref_url)
	WHERE NOT EXISTS (SELECT FROM old_g WHERE old_g.uuid = u.uuid)
	ON CONFLICT (uuid) DO NOTHING RETURNING id, uuid
), gid AS (
	SELECT id, uuid FROM old_g UNION ALL SELECT id, uuid FROM new_g
), r AS (
	INSERT INTO result (id, testcase_name, submit_time, outcome, note, ref_url, origin)
	SELECT ids.id, x.tc, x.t, x.o, x.note, x.ref, x.origin
	FROM unnest($10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[]) WITH ORDINALITY AS x(tc, t, o, note, ref, origin, n)
	JOIN ids USING (n)
), l AS (
	INSERT INTO result_group (group_id, result_id)
	SELECT gid.id, ids.id FROM unnest($16::bigint[], $17::text[]) AS l(n, uuid) JOIN ids USING (n) LEFT JOIN gid USING (uuid)
), d AS (
	INSERT INTO result_data (result_id, key, value)
	SELECT ids.id, d.key, d.value FROM unnest($18::bigint[], $19::text[], $20::text[]) WITH ORDINALITY AS d(n, key, value, i)
	JOIN ids USING (n) ORDER BY d.i
), e AS (
	INSERT INTO outbox (result_id, created) SELECT ids.id, $22::bigint FROM unnest($21::bigint[]) AS e(n) JOIN ids USING (n) ORDER BY ids.id
)
SELECT n, id, NULL, NULL FROM ids UNION ALL SELECT 0, NULL, name, ref_url FROM old_tc`

// pgBatch is a batch's rows as insertPostgres takes them.
type pgBatch struct {
	testcase    []string
	testcaseRef []*string
	setTCRef    []bool

	groupUUID []string
	setDesc   []bool
	desc      []*string
	setRef    []bool
	groupRef  []*string

	tc, outcome, origin []string
	when                []int64
	note, ref           []*string

	linkOf, dataOf, eventOf []int64
	linkUUID, key, value    []string
}

// newPGBatch folds the testcase and group updates of batch, in order, and
// lays out its rows.
func newPGBatch(batch []*writeRequest) pgBatch {
	var b pgBatch
	testcases := map[string]int{} // name: index in testcase
	groups := map[string]int{}    // uuid: index in groupUUID
	for i, r := range batch {
		in := r.in
		n := int64(i + 1)
		at, ok := testcases[in.Testcase.Name]
		if !ok {
			at = len(b.testcase)
			testcases[in.Testcase.Name] = at
			b.testcase, b.testcaseRef, b.setTCRef = append(b.testcase, in.Testcase.Name), append(b.testcaseRef, nil), append(b.setTCRef, false)
		}
		if in.Testcase.SetRefURL {
			b.testcaseRef[at], b.setTCRef[at] = in.Testcase.RefURL, true
		}
		linked := len(b.linkUUID) // this result's links start here
		for _, g := range in.Groups {
			at, ok := groups[g.UUID]
			if !ok {
				at = len(b.groupUUID)
				groups[g.UUID] = at
				b.groupUUID = append(b.groupUUID, g.UUID)
				b.setDesc, b.desc = append(b.setDesc, false), append(b.desc, nil)
				b.setRef, b.groupRef = append(b.setRef, false), append(b.groupRef, nil)
			}
			if g.SetDescription {
				b.setDesc[at], b.desc[at] = true, g.Description
			}
			if g.SetRefURL {
				b.setRef[at], b.groupRef[at] = true, g.RefURL
			}
			if !slices.Contains(b.linkUUID[linked:], g.UUID) {
				b.linkOf, b.linkUUID = append(b.linkOf, n), append(b.linkUUID, g.UUID)
			}
		}
		b.tc = append(b.tc, in.Testcase.Name)
		b.when = append(b.when, micros(submitTime(in)))
		b.outcome = append(b.outcome, in.Outcome)
		b.note, b.ref = append(b.note, in.Note), append(b.ref, in.RefURL)
		b.origin = append(b.origin, origin(in))
		for _, p := range in.Data {
			b.dataOf, b.key, b.value = append(b.dataOf, n), append(b.key, p.Key), append(b.value, p.Value)
		}
		if in.Event {
			b.eventOf = append(b.eventOf, n)
		}
	}
	return b
}

// insertPostgres writes batch in tx or, with tx nil, as a transaction of
// its own, and fills in each result's stored form.
func (s *sqlStore) insertPostgres(ctx context.Context, tx *sql.Tx, batch []*writeRequest) error {
	st, err := s.writeStmt(ctx, tx, insertPostgres)
	if err != nil {
		return err
	}
	b := newPGBatch(batch)
	rows, err := st.QueryContext(ctx, len(batch),
		b.testcase, b.testcaseRef, b.setTCRef,
		b.groupUUID, b.setDesc, b.desc, b.setRef, b.groupRef,
		b.tc, b.when, b.outcome, b.note, b.ref, b.origin,
		b.linkOf, b.linkUUID, b.dataOf, b.key, b.value, b.eventOf, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("create results: %w", err)
	}
	defer rows.Close()
	ids := make([]int64, len(batch))
	testcases := map[string]*string{}
	for rows.Next() {
		var n int
		var id sql.NullInt64
		var name, ref sql.NullString
		if err := rows.Scan(&n, &id, &name, &ref); err != nil {
			return fmt.Errorf("create results: %w", err)
		}
		if n == 0 {
			testcases[name.String] = stringPtr(ref)
		} else if n <= len(ids) {
			ids[n-1] = id.Int64
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("create results: %w", err)
	}
	for i, r := range batch {
		if ids[i] == 0 {
			return fmt.Errorf("create results: no id for result %d of %d", i+1, len(batch))
		}
		in := r.in
		ref := testcases[in.Testcase.Name] // nil for a testcase the batch makes
		if in.Testcase.SetRefURL {
			ref = in.Testcase.RefURL
		}
		testcases[in.Testcase.Name] = ref
		res := Result{ID: ids[i], Outcome: in.Outcome, Testcase: Testcase{Name: in.Testcase.Name, RefURL: ref},
			SubmitTime: fromMicros(b.when[i]), Note: in.Note, RefURL: in.RefURL, Data: in.Data, Groups: []string{}, Origin: b.origin[i]}
		for _, g := range in.Groups {
			if !slices.Contains(res.Groups, g.UUID) {
				res.Groups = append(res.Groups, g.UUID)
			}
		}
		r.res = res
	}
	return nil
}
