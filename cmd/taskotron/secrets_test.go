package main

import (
	"strings"
	"testing"
)

// TestSecretsAreNeverPrinted: the passwords and tokens of the configuration
// appear neither in `taskotron config` nor in the error of a role that
// cannot use a URL or DSN (unparsable, or unreachable).
func TestSecretsAreNeverPrinted(t *testing.T) {
	const pw, dbpw, tok, btok = "amqpS3cret", "dbS3cret", "rdbT0ken", "bodhiT0ken"
	secrets := []string{pw, dbpw, tok, btok}
	data := t.TempDir()
	base := []string{"TASKOTRON_DATA_DIR=" + data}
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"config", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@rabbit.example.org/", "TASKOTRON_RESULTSDB_TOKEN=" + tok,
			"TASKOTRON_BODHI_TOKEN=" + btok, "TASKOTRON_TRIGGER_STATE_DB=postgres://u:" + dbpw + "@db/t", "TASKOTRON_RESULTSDB_DB=postgres://u:" + dbpw + "@db/r",
			"TASKOTRON_RESULTSDB_URL=https://u:" + tok + "@rdb.example.org/api/v2.0"}, []string{"config"}},
		{"unparsable AMQP URL, trigger", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"trigger"}},
		{"unparsable AMQP URL, worker", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"worker"}},
		{"unparsable AMQP URL, queue", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@host:notaport/"}, []string{"queue"}},
		{"unreachable AMQP", []string{"TASKOTRON_AMQP_URL=amqp://u:" + pw + "@127.0.0.1:1/"}, []string{"trigger"}},
		{"unparsable DSN, resultsdb", nil, []string{"resultsdb", "serve", "--listen", "127.0.0.1:0", "--db", "postgres://u:" + dbpw + "@localhost:notaport/r"}},
		{"unreachable DSN, resultsdb", nil, []string{"resultsdb", "serve", "--listen", "127.0.0.1:0", "--db", "postgres://u:" + dbpw + "@127.0.0.1:1/r?connect_timeout=2"}},
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
