package sqldb

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBind(t *testing.T) {
	q := "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"
	if got := Bind(false, q); got != q {
		t.Errorf("sqlite: %q", got)
	}
	if got := Bind(true, q); got != "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)" {
		t.Errorf("postgres: %q", got)
	}
}

func TestOpen(t *testing.T) {
	db, pg, err := Open("sqlite:"+filepath.Join(t.TempDir(), "a", "b.db"), "test database", "NORMAL")
	if err != nil || pg {
		t.Fatalf("sqlite: %v %v", pg, err)
	}
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for dsn, want := range map[string]string{
		"sqlite:":                      `test database "sqlite:": sqlite needs a path`,
		"mysql://x":                    "test database: want sqlite:PATH or postgres://…",
		"postgres://u:secret@h:bad/db": "test database: ",
	} {
		_, _, err := Open(dsn, "test database", "NORMAL")
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want %q and no password", dsn, err, want)
		}
	}
}
