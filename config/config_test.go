package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "taskotron.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNoFileGivesDefaults(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ResultsDB.Listen != "127.0.0.1:5001" || cfg.Runner.Concurrency < 1 || len(cfg.Trigger.Arches) == 0 {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	p := write(t, "data_dir: /srv/t\nrunner:\n  concurrency: 8\n  job_timeout: 90s\ntrigger:\n  arches: [x86_64, aarch64]\n")
	cfg, err := Load(p, []string{"TASKOTRON_RUNNER_CONCURRENCY=3", "TASKOTRON_RESULTSDB_URL=http://rdb/api/v2.0",
		"TASKOTRON_TRIGGER_ARCHES=noarch, s390x", "TASKOTRON_BODHI_COMMENT_SPAN=1h", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/t" || cfg.Runner.Concurrency != 3 || cfg.Runner.JobTimeout != 90*time.Second {
		t.Errorf("runner %+v data %q", cfg.Runner, cfg.DataDir)
	}
	if cfg.ResultsDB.URL != "http://rdb/api/v2.0" || strings.Join(cfg.Trigger.Arches, ",") != "noarch,s390x" || cfg.Bodhi.CommentSpan != time.Hour {
		t.Errorf("env not applied: %+v %+v", cfg.ResultsDB, cfg.Trigger.Arches)
	}
	// Keys not in the file keep their defaults.
	if cfg.Runner.MaxAttempts != Default().Runner.MaxAttempts {
		t.Errorf("max_attempts %d", cfg.Runner.MaxAttempts)
	}
}

func TestErrorsNameWhatAndWhere(t *testing.T) {
	cases := []struct {
		name, body string
		env        []string
		want       []string
	}{
		{"unknown key", "runner:\n  concurrancy: 3\n", nil, []string{"taskotron.yaml", "line 2", "concurrancy"}},
		{"malformed", "runner: [\n", nil, []string{"taskotron.yaml", "line"}},
		{"wrong type", "runner:\n  concurrency: many\n", nil, []string{"taskotron.yaml", "line 2"}},
		{"bad env", "", []string{"TASKOTRON_RUNNER_JOB_TIMEOUT=soon"}, []string{"TASKOTRON_RUNNER_JOB_TIMEOUT", "soon"}},
		{"moved key", "koji:\n  url: http://koji\n  bodhi_url: http://bodhi\n", nil, []string{"taskotron.yaml", "line 3", "koji.bodhi_url", "bodhi.url"}},
		{"moved env", "", []string{"TASKOTRON_KOJI_BODHI_URL=http://bodhi"}, []string{"TASKOTRON_KOJI_BODHI_URL", "TASKOTRON_BODHI_URL"}},
	}
	for _, c := range cases {
		p := write(t, c.body)
		_, err := Load(p, c.env)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: error is not one line: %q", c.name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not mention %q", c.name, msg, w)
			}
		}
	}
	if _, err := Load("/no/such/taskotron.yaml", nil); err == nil || !strings.Contains(err.Error(), "/no/such/taskotron.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestEveryKeyHasAnEnvironmentName(t *testing.T) {
	keys := Keys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k[1]] {
			t.Errorf("two keys share %s", k[1])
		}
		seen[k[1]] = true
	}
	if !seen["TASKOTRON_RESULTSDB_URL"] || !seen["TASKOTRON_DATA_DIR"] || !seen["TASKOTRON_AMQP_URL"] {
		t.Errorf("keys: %v", keys)
	}
}

func TestReadmeDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(readme), "`"+k[0]+"`") {
			t.Errorf("README.md does not document the key %s", k[0])
		}
	}
}

// Every place below data_dir is defined by Resolved, absolute, and the same
// when resolved again.
func TestResolvedPlacesBelowDataDir(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "rel/data"
	cfg.Reporter.Spool = "/srv/spool"
	r := cfg.Resolved()
	abs, _ := filepath.Abs("rel/data")
	want := map[string]string{
		"data_dir": abs, "artifacts": abs + "/artifacts", "work": abs + "/work", "mirror": abs + "/mirror",
		"spool": "/srv/spool", "job log": abs + "/jobs.jsonl", "state db": "sqlite:" + abs + "/trigger.sqlite",
		"resultsdb": "sqlite:" + abs + "/resultsdb.sqlite", "koji cache": abs + "/cache/koji", "queue": abs + "/queue",
		"dead letters": abs + "/dead-letters.jsonl",
	}
	got := map[string]string{
		"data_dir": r.DataDir, "artifacts": r.Runner.ArtifactsDir, "work": r.Runner.WorkDir, "mirror": r.Runner.Mirror,
		"spool": r.Reporter.Spool, "job log": r.Trigger.JobLog, "state db": r.Trigger.StateDB,
		"resultsdb": r.ResultsDB.DB, "koji cache": r.Koji.CacheDir, "queue": r.QueueDir(), "dead letters": r.DeadLetterFile(),
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if again := r.Resolved(); !reflect.DeepEqual(again, r) {
		t.Errorf("resolving twice changed the configuration")
	}
}
