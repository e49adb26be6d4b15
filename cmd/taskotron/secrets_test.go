package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsAreNeverPrinted: the passwords and tokens of the configuration
// appear neither in `taskotron config` nor in the error of a role that
// cannot use a URL or DSN (unparsable, or unreachable).
func TestSecretsAreNeverPrinted(t *testing.T) {
	const pw, dbpw, tok, btok, smtppw = "amqpS3cret", "dbS3cret", "rdbT0ken", "bodhiT0ken", "smtpS3cret"
	secrets := []string{pw, dbpw, tok, btok, smtppw}
	data := t.TempDir()
	base := []string{"TASKOTRON_DATA_DIR=" + data}
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"config", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@rabbit.example.org/", "TASKOTRON_RESULTSDB_TOKEN=" + tok,
			"TASKOTRON_BODHI_TOKEN=" + btok, "TASKOTRON_TRIGGER_STATE_DB=postgres://u:" + dbpw + "@db/t", "TASKOTRON_RESULTSDB_DB=postgres://u:" + dbpw + "@db/r",
			"TASKOTRON_RESULTSDB_URL=https://u:" + tok + "@rdb.example.org/api/v2.0", "TASKOTRON_NOTIFY_SMTP_PASSWORD=" + smtppw,
			"TASKOTRON_NOTIFY_DB=postgres://u:" + dbpw + "@db/n", "TASKOTRON_NOTIFY_RESULTS_URL=https://u:" + tok + "@rdb.example.org/api/v2.0"}, []string{"config"}},
		{"unparsable DSN, notify", []string{"TASKOTRON_NOTIFY_DB=postgres://u:" + dbpw + "@h:bad/db", "TASKOTRON_NOTIFY_SMTP_PASSWORD=" + smtppw}, []string{"notify", "list"}},
		{"unreachable AMQP, notify", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@127.0.0.1:1/", "TASKOTRON_NOTIFY_LISTEN=127.0.0.1:0",
			"TASKOTRON_NOTIFY_SMTP_PASSWORD=" + smtppw, "TASKOTRON_NOTIFY_DB=postgres://u:" + dbpw + "@h:bad/db"}, []string{"notify"}},
		{"unparsable AMQP URL, trigger", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"trigger"}},
		{"unparsable AMQP URL, worker", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"worker"}},
		{"unparsable AMQP URL, queue", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"queue"}},
		{"unreachable AMQP", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@127.0.0.1:1/"}, []string{"trigger"}},
		{"unparsable DSN, resultsdb", nil, []string{"resultsdb", "serve", "--listen", "127.0.0.1:0", "--db", "postgres://u:" + dbpw + "@localhost:notaport/r"}},
		{"unreachable DSN, resultsdb", nil, []string{"resultsdb", "serve", "--listen", "127.0.0.1:0", "--db", "postgres://u:" + dbpw + "@127.0.0.1:1/r?connect_timeout=2"}},
		{"unreachable central server, executions", []string{"TASKOTRON_EXECDB_URL=http://u:" + pw + "@127.0.0.1:1"}, []string{"executions"}},
		{"unreachable central server, logs", []string{"TASKOTRON_EXECDB_URL=http://u:" + pw + "@127.0.0.1:1"}, []string{"logs", "some-uuid"}},
		{"unparsable central server URL", []string{"TASKOTRON_EXECDB_URL=http://u:" + pw + "@[::1"}, []string{"executions"}},
		{"unparsable state DSN, trigger", []string{"TASKOTRON_TRIGGER_STATE_DB=postgres://u:" + dbpw + "@h:bad/db"}, []string{"trigger", "../../fixtures/messages"}},
	}
	for _, c := range cases {
		_, stdout, stderr := runCLI(t, append(append([]string{}, base...), c.env...), c.args...)
		for _, s := range secrets {
			if strings.Contains(stdout+stderr, s) {
				t.Errorf("%s: the secret %q is printed:\n%s%s", c.name, s, stdout, stderr)
			}
		}
		if c.name != "config" && stderr == "" {
			t.Errorf("%s: no error printed", c.name)
		}
	}
	_, stdout, _ := runCLI(t, append(base, "TASKOTRON_AMQP_URL=amqp://u:"+pw+"@rabbit.example.org/"), "config")
	if !strings.Contains(stdout, "amqp://u:***@rabbit.example.org/") {
		t.Errorf("config does not show the URL with its password masked:\n%s", stdout)
	}
}

// TestTerminalControlsInMessagesAreNotWrittenRaw: a bus message whose item
// holds terminal control sequences (a title change, a screen clear) is shown
// by `taskotron explain` and `up --once` with the sequences escaped.
func TestTerminalControlsInMessagesAreNotWrittenRaw(t *testing.T) {
	dir := t.TempDir()
	msg := `{"topic": "org.fedoraproject.prod.buildsys.build.state.change", "body": {"build_id": 1, "name": "evil\u001b]0;pwned\u0007", "version": "1\u001b[2J", "release": "1.fc40", "new": 1, "owner": "x", "instance": "primary", "task_id": 2}}`
	path := filepath.Join(dir, "evil.json")
	if err := os.WriteFile(path, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"trigger", "--no-dedup", path},
		{"up", "--once", "--tasks", "../../tasks", "--fakes", "../../fixtures", path},
	} {
		code, stdout, stderr := runCLI(t, []string{"TASKOTRON_DATA_DIR=" + filepath.Join(dir, args[0]), "TASKOTRON_RESULTSDB_LISTEN=127.0.0.1:0"}, args...)
		if code != 0 || !strings.Contains(stdout+stderr, `evil\x1b]0;pwned`) {
			t.Errorf("%v: exit %d, and the item is not shown escaped:\n%s%s", args, code, stdout, stderr)
		}
		if strings.ContainsAny(stdout+stderr, "\x1b\x07") {
			t.Errorf("%v writes a raw control character:\n%q", args, stdout+stderr)
		}
	}
}
