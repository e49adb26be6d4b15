package trigger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/contract"
)

const testPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// postgresDSN gives a DSN on a fresh schema of the test database, dropped
// at the end of the test.
func postgresDSN(t testing.TB) string {
	t.Helper()
	db, err := sql.Open("pgx", testPostgres)
	if err != nil {
		t.Fatalf("PostgreSQL %s: %v", testPostgres, err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := fmt.Sprintf("trigger_test_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("PostgreSQL at %s is needed (user postgres, database test, trust auth): %v", testPostgres, err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	return testPostgres + "&search_path=" + schema
}

func testJobs(msgID string, tasks ...string) []contract.Job {
	var jobs []contract.Job
	for _, task := range tasks {
		jobs = append(jobs, contract.Job{Item: "foo-1.0-1.fc40", ItemType: "koji_build", TaskName: task, Arch: "x86_64", UUID: newUUID(), MsgID: msgID})
	}
	return jobs
}

func TestDedupStores(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state.sqlite") },
		"postgres": func(t *testing.T) string { return postgresDSN(t) },
	}
	for name, dsnFor := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			dsn := dsnFor(t)
			s, err := OpenDedup(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			const window = time.Hour
			a := testJobs("A", "rpmlint", "abicheck")
			res, err := s.Claim(ctx, "A", a, now, window)
			if err != nil || len(res.Jobs) != 2 || res.Seen != "" {
				t.Fatalf("first claim: %+v %v", res, err)
			}
			// Redelivered before commit: the same jobs, same uuids.
			res, err = s.Claim(ctx, "A", testJobs("A", "rpmlint", "abicheck"), now, window)
			if err != nil || res.Seen != "pending" || len(res.Jobs) != 2 || res.Jobs[0].UUID != a[0].UUID {
				t.Fatalf("pending claim: %+v %v", res, err)
			}
			if err := s.Done(ctx, "A"); err != nil {
				t.Fatal(err)
			}
			// Another message for the same work within the window: nothing.
			res, err = s.Claim(ctx, "B", testJobs("B", "rpmlint", "rpmgrill"), now.Add(30*time.Minute), window)
			if err != nil || len(res.Jobs) != 1 || res.Jobs[0].TaskName != "rpmgrill" || len(res.Duplicates) != 1 {
				t.Fatalf("claim within window: %+v %v", res, err)
			}
			// After the window the same work runs again.
			res, err = s.Claim(ctx, "C", testJobs("C", "rpmlint"), now.Add(2*time.Hour), window)
			if err != nil || len(res.Jobs) != 1 {
				t.Fatalf("claim after window: %+v %v", res, err)
			}
			s.Close()
			// Across a restart the message is still known as done.
			s, err = OpenDedup(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err = s.Claim(ctx, "A", testJobs("A", "rpmlint"), now.Add(3*time.Hour), window)
			if err != nil || res.Seen != "done" || len(res.Jobs) != 0 {
				t.Fatalf("claim after restart: %+v %v", res, err)
			}
		})
	}
}

func TestOpenDedupErrors(t *testing.T) {
	_, err := OpenDedup(t.Context(), "postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable postgres: %v", err)
	}
	if _, err := OpenDedup(t.Context(), "sqlite:/nonexistent-dir/x/state.sqlite"); err == nil {
		t.Fatal("sqlite in a missing folder opened")
	}
}

// The SQLite state belongs to one trigger process: a second one is told so.
func TestDedupSQLiteHeldByOneProcess(t *testing.T) {
	if os.Getenv("DEDUP_HOLDER") != "" {
		s, err := OpenDedup(context.Background(), os.Getenv("DEDUP_HOLDER"))
		if err != nil {
			os.Exit(3)
		}
		defer s.Close()
		fmt.Println("holding")
		time.Sleep(30 * time.Second)
		return
	}
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.sqlite")
	holder := exec.Command(os.Args[0], "-test.run=^TestDedupSQLiteHeldByOneProcess$")
	holder.Env = append(os.Environ(), "DEDUP_HOLDER="+dsn)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	buf := make([]byte, 7)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "holding" {
		t.Fatalf("holder did not start: %q %v", buf, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err = OpenDedup(ctx, dsn)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second process: %v", err)
	}
}

// A tag changes with every tag event: after the fuse delay the next event
// makes a new job, while a build's key still counts for the whole dedup
// window, also after keys were pruned for the short tag window.
func TestDedupTagWindowIsTheFuseDelay(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state.sqlite") },
		"postgres": func(t *testing.T) string { return postgresDSN(t) },
	}
	for name, dsnFor := range backends {
		t.Run(name, func(t *testing.T) {
			store, err := OpenDedup(t.Context(), dsnFor(t))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			now := t0
			tr := New(Options{Dedup: store, Arches: []string{"x86_64"}, DedupWindow: 6 * time.Hour, FuseDelay: 15 * time.Minute, Now: func() time.Time { return now }})
			tag := func(id, pkg string) contract.Message {
				return contract.Message{ID: id, Topic: "org.fedoraproject.prod.buildsys.tag", Body: map[string]any{"tag": "f40-updates-pending", "name": pkg, "version": "1", "release": "1.fc40", "instance": "primary"}}
			}
			build := func(id string) contract.Message {
				return contract.Message{ID: id, Topic: "org.fedoraproject.prod.buildsys.build.state.change", Body: map[string]any{"new": 1.0, "name": "foo", "version": "1", "release": "1.fc40", "instance": "primary"}}
			}
			step := func(at time.Duration, m contract.Message, want string) {
				t.Helper()
				now = t0.Add(at)
				if got := jobSet(handle(t, tr, m)); got != want {
					t.Fatalf("%s at +%s: jobs %q, want %q", m.ID, at, got, want)
				}
			}
			step(0, build("build-1"), "nvr-format/x86_64 python-versions/noarch rpmlint/x86_64")
			step(0, tag("tag-1", "a"), "upgradepath/noarch")
			step(time.Minute, tag("tag-2", "b"), "")                      // the same burst
			step(20*time.Minute, tag("tag-3", "c"), "upgradepath/noarch") // a new package in the tag
			step(40*time.Minute, build("build-2"), "")                    // the same build, sent again
		})
	}
}

// A Bodhi update keeps its name while its builds change: each set of builds
// is new work, the same set again is not, and Bodhi's re-trigger asks for a
// new run of the same builds.
func TestDedupBodhiUpdateRevisions(t *testing.T) {
	store, err := OpenDedup(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "state.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tr := New(Options{Dedup: store, Arches: []string{"x86_64"}})
	update := func(id string, retrigger bool, nvrs ...string) contract.Message {
		var builds []any
		for _, n := range nvrs {
			builds = append(builds, map[string]any{"nvr": n})
		}
		body := map[string]any{"update": map[string]any{"alias": "FEDORA-2024-0123456789", "builds": builds}}
		if retrigger {
			body["re-trigger"] = true
		}
		return contract.Message{ID: id, Topic: "org.fedoraproject.prod.bodhi.update.status.testing.koji-build-group.build.complete", Body: body}
	}
	steps := []struct {
		msg  contract.Message
		want string
	}{
		{update("m1", false, "foo-1-1.fc40", "bar-1-1.fc40"), "nvr-format/x86_64"},
		{update("m2", false, "bar-1-1.fc40", "foo-1-1.fc40"), ""}, // the same builds, sent again
		{update("m3", false, "foo-1-2.fc40", "bar-1-1.fc40"), "nvr-format/x86_64"},
		{update("m4", true, "foo-1-2.fc40", "bar-1-1.fc40"), "nvr-format/x86_64"},
		{update("m4", true, "foo-1-2.fc40", "bar-1-1.fc40"), ""}, // that request redelivered
	}
	for _, s := range steps {
		jobs := handle(t, tr, s.msg)
		if got := jobSet(jobs); got != s.want {
			t.Fatalf("%s: jobs %q, want %q", s.msg.ID, got, s.want)
		}
		if err := tr.Commit(t.Context(), s.msg.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// A state written by earlier versions (a table of messages and one of
// keys) is taken over: pending jobs, done messages and claimed keys keep
// counting.
func TestDedupSQLiteTakesOverTheTwoTableState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.sqlite")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	pending := testJobs("P", "rpmlint")
	done := testJobs("D", "abicheck")
	recorded, _ := json.Marshal(pending)
	for _, stmt := range []string{
		`CREATE TABLE trigger_messages (msg_id TEXT PRIMARY KEY, state TEXT NOT NULL, jobs TEXT NOT NULL, at BIGINT NOT NULL) WITHOUT ROWID`,
		`CREATE TABLE trigger_keys (key TEXT PRIMARY KEY, msg_id TEXT NOT NULL, at BIGINT NOT NULL) WITHOUT ROWID`,
		fmt.Sprintf(`INSERT INTO trigger_messages VALUES ('P', 'pending', '%s', %d), ('D', 'done', '[]', %d)`, recorded, now.UnixNano(), now.UnixNano()),
		fmt.Sprintf(`INSERT INTO trigger_keys VALUES ('%s', 'P', %d), ('%s', 'D', %d)`, storedKey(pending[0]), now.UnixNano(), storedKey(done[0]), now.UnixNano()),
	} {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	old.Close()

	s, err := OpenDedup(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	later := now.Add(time.Minute)
	res, err := s.Claim(t.Context(), "P", testJobs("P", "rpmlint"), later, time.Hour)
	if err != nil || res.Seen != "pending" || len(res.Jobs) != 1 || res.Jobs[0].UUID != pending[0].UUID {
		t.Fatalf("pending message after the move: %+v %v", res, err)
	}
	res, err = s.Claim(t.Context(), "D", done, later, time.Hour)
	if err != nil || res.Seen != "done" || len(res.Jobs) != 0 {
		t.Fatalf("done message after the move: %+v %v", res, err)
	}
	res, err = s.Claim(t.Context(), "E", testJobs("E", "abicheck", "rpmgrill"), later, time.Hour)
	if err != nil || len(res.Duplicates) != 1 || res.Duplicates[0].TaskName != "abicheck" || len(res.Jobs) != 1 {
		t.Fatalf("a key claimed before the move: %+v %v", res, err)
	}
	var tables int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('trigger_messages', 'trigger_keys')`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("old tables left: %d %v", tables, err)
	}
}

// The journal forgets what no dedup decision needs any more: messages after
// MessageRetention, keys after the window; also across a restart.
func TestDedupSQLiteJournalIsPruned(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.sqlite")
	s, err := OpenDedup(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		id := fmt.Sprintf("old-%d", i)
		if _, err := s.Claim(t.Context(), id, testJobs(id, "rpmlint"), t0, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Done(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	journalRows := func() int {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM trigger_journal`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := journalRows(); n != 200 {
		t.Fatalf("journal after 100 claims and 100 dones: %d rows", n)
	}
	later := t0.Add(MessageRetention + time.Hour)
	if _, err := s.Claim(t.Context(), "new", testJobs("new", "abicheck"), later, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := journalRows(); n != 1 {
		t.Fatalf("journal after the retention: %d rows, want only the new claim", n)
	}
	s.Close()
	s, err = OpenDedup(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Claim(t.Context(), "old-7", testJobs("old-7", "rpmlint"), later, time.Hour)
	if err != nil || res.Seen != "" || len(res.Jobs) != 1 {
		t.Fatalf("a message older than the retention: %+v %v", res, err)
	}
	res, err = s.Claim(t.Context(), "new", testJobs("new", "abicheck"), later, time.Hour)
	if err != nil || res.Seen != "pending" {
		t.Fatalf("the new claim after a restart: %+v %v", res, err)
	}
}
