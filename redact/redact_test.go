package redact

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@127.0.0.1:5672/":         "amqp://guest:***@127.0.0.1:5672/",
		"amqp://u:s3cret@host:notaport/":             "amqp://u:***@host:notaport/",
		"postgres://u:p@ss@db.example.org/r?x=1":     "postgres://u:***@db.example.org/r?x=1",
		"postgres://u:pa/ss@db/r":                    "postgres://u:***@db/r",
		"postgres://postgres@127.0.0.1:5432/test":    "postgres://postgres@127.0.0.1:5432/test",
		"sqlite:/var/lib/taskotron/resultsdb.sqlite": "sqlite:/var/lib/taskotron/resultsdb.sqlite",
		"https://h/x?next=mail@example.org":          "https://h/x?next=mail@example.org",
		"amqp://user:@h/":                            "amqp://user:@h/",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorMasksAndKeepsTheCause(t *testing.T) {
	cause := fs.ErrNotExist
	err := URLError(errors.Join(errors.New(`parse "amqp://u:s3cret@h:x/": invalid port`), cause), "amqp://u:s3cret@h:x/")
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "u:***@h:x") {
		t.Errorf("masked error: %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cause is lost")
	}
	plain := errors.New("nothing secret")
	if Error(plain, "s3cret", "") != plain {
		t.Errorf("an error without secrets is not the same error")
	}
}
