// Package config reads taskotron's one YAML configuration file and applies
// environment overrides. Every key has a default, so no file is needed, and
// Resolved is the one place where the defaults below data_dir are defined.
// It imports no other package of the project.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskotron-go/taskotron/capped"
	"github.com/taskotron-go/taskotron/redact"
)

// Config is the whole configuration. Each role reads its own section.
type Config struct {
	// DataDir holds everything the embedded defaults keep on disk: the job
	// queue, the SQLite databases, artifacts, spool and the task mirror.
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel  string    `yaml:"log_level"`
	Trigger   Trigger   `yaml:"trigger"`
	Runner    Runner    `yaml:"runner"`
	Reporter  Reporter  `yaml:"reporter"`
	ResultsDB ResultsDB `yaml:"resultsdb"`
	ExecDB    ExecDB    `yaml:"execdb"`
	Labs      Labs      `yaml:"labs"`
	Notify    Notify    `yaml:"notify"`
	AMQP      AMQP      `yaml:"amqp"`
	Bodhi     Bodhi     `yaml:"bodhi"`
	Koji      Koji      `yaml:"koji"`
	DistGit   DistGit   `yaml:"distgit"`
	Status    Status    `yaml:"status"`
}

// Trigger configures the message → job role.
type Trigger struct {
	// Rules is the trigger_rules.yml file; empty means the built-in rules.
	Rules string `yaml:"rules"`
	// Arches is the default for rules that do not name arches.
	Arches []string `yaml:"arches"`
	// CritpathFile lists critical-path package names, one per line.
	CritpathFile string `yaml:"critpath_file"`
	// Messages is where `up` reads bus messages from when no broker is set.
	Messages string `yaml:"messages"`
	// DedupWindow: the same {item, item_type, taskname, arch} within it makes no second job
	// (a Bodhi update's key includes its builds; tag jobs use fuse_delay instead).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// FuseDelay merges bursts of tag events for one tag into one job per task and arch;
	// a tag event after it makes the next job (Fedora ran 15m; 0 makes a job per tag event).
	FuseDelay time.Duration `yaml:"fuse_delay"`
	// JobLog is the JSON-lines file every scheduled job is appended to.
	JobLog string `yaml:"job_log"`
	// StateDB keeps dedup state: sqlite:PATH or postgres://…; empty means sqlite in data_dir.
	StateDB string `yaml:"state_db" secret:"url"`
	// GitCacheDir is where rules' discover: clones repos; empty means a temp dir.
	GitCacheDir string `yaml:"git_cache_dir"`
	// DiscoverRewrite maps repo URL prefixes for discover: to others (a local mirror).
	DiscoverRewrite map[string]string `yaml:"discover_rewrite"`
}

// Runner configures task checkout and execution.
type Runner struct {
	// Mirror is the folder of task git repos, one per task name.
	Mirror string `yaml:"mirror"`
	// Repos maps a task name to a repo path inside a mirror, overriding <mirror>/<taskname>.
	Repos map[string]string `yaml:"repos"`
	// ArtifactsDir gets one folder per execution uuid.
	ArtifactsDir string `yaml:"artifacts_dir"`
	// WorkDir is where per-run working folders and checkouts go.
	WorkDir string `yaml:"work_dir"`
	// ArtifactsURL is the public URL of ArtifactsDir; results link below it.
	ArtifactsURL string `yaml:"artifacts_url"`
	// Concurrency is how many jobs a worker runs at once.
	Concurrency int `yaml:"concurrency"`
	// MaxWaiting is how many jobs may wait out a retry backoff without
	// holding a concurrency slot (0: as many as concurrency); a worker on
	// RabbitMQ is handed concurrency jobs plus one per job waiting, never
	// more than concurrency + max_waiting.
	MaxWaiting int `yaml:"max_waiting"`
	// ActionTimeout and JobTimeout kill the whole process group when exceeded.
	// On RabbitMQ a job must end within the broker's consumer_timeout
	// (30 min by default), or the broker closes the worker's channel and the
	// job runs again: raise consumer_timeout above job_timeout.
	ActionTimeout time.Duration `yaml:"action_timeout"`
	JobTimeout    time.Duration `yaml:"job_timeout"`
	// MaxAttempts: a job that crashed this many times gets a CRASHED result.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxOutput caps what is kept of one action's stdout or stderr, in bytes.
	MaxOutput int64 `yaml:"max_output"`
	// EnvAllowlist names the environment variables a task may see.
	EnvAllowlist []string `yaml:"env_allowlist"`
	// Python is the interpreter for the python directive.
	Python string `yaml:"python"`
	// Sandbox is auto (bubblewrap; roles refuse to start where it cannot
	// work), bwrap, or off (tasks run as the worker's user; a warning per
	// process in the run's log).
	Sandbox string `yaml:"sandbox"`
}

// Reporter configures where results go.
type Reporter struct {
	// Spool holds results and Bodhi comments that could not be delivered yet.
	Spool string `yaml:"spool"`
	// Namespaces is a namespaces.yaml file (reference §2.8); empty allows all.
	Namespaces string `yaml:"namespaces"`
	// ExecDBURL is the base of each group's ref_url (<url>/jobs/<uuid>).
	ExecDBURL string `yaml:"execdb_url" secret:"url"`
	// TestcaseURL is the base of each testcase's ref_url (<url>/<name>).
	TestcaseURL string `yaml:"testcase_url"`
	// FlushInterval is how often spooled results and Bodhi comments are sent again.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Retries is how often one ResultsDB request is repeated before its
	// result is spooled (a refused connection is spooled at once; Bodhi has
	// bodhi.retries).
	Retries int `yaml:"retries"`
}

// ResultsDB configures the embedded server and the client.
type ResultsDB struct {
	// URL of an external ResultsDB API (…/api/v2.0); empty means the embedded server
	// (and runtask reports nothing unless given --report).
	URL string `yaml:"url" secret:"url"`
	// Listen is the embedded server's address.
	Listen string `yaml:"listen"`
	// BaseURL is the public URL `resultsdb serve` puts in links (href, next,
	// prev); empty means the URL each request came to, read from Host,
	// X-Forwarded-Host and X-Forwarded-Scheme/-Proto as ResultsDB does.
	BaseURL string `yaml:"base_url"`
	// DB is sqlite:PATH or postgres://…; empty means sqlite in data_dir.
	DB string `yaml:"db" secret:"url"`
	// Token, when set, is required as a bearer token for writes.
	Token string `yaml:"token" secret:"token"`
	// Origin is the origin (the submitting system) of results written with resultsdb.token,
	// or without a token when none is set; other origins write with tokens of their own
	// (`taskotron resultsdb token add ORIGIN`).
	Origin string `yaml:"origin"`
	// AdditionalOutcomes are accepted on top of PASSED, INFO, FAILED, NEEDS_INSPECTION.
	AdditionalOutcomes []string `yaml:"additional_outcomes"`
	// Publish sends resultsdb.result.new to amqp.url for every new result,
	// through an outbox in the database so that none is lost.
	Publish bool `yaml:"publish"`
}

// ExecDB configures execution tracking: the central server keeps a record
// of every job from queued to its last result, with live logs and
// artifacts, and the trigger and workers report to it.
type ExecDB struct {
	// URL is the central server the trigger and workers report executions, live logs and
	// artifacts to (its root URL); empty: they report none (up: its embedded server).
	URL string `yaml:"url" secret:"url"`
	// Token, when set, is required by the central server for reports and sent by the roles.
	Token string `yaml:"token" secret:"token"`
	// DB is the central server's executions database: sqlite:PATH or postgres://…;
	// empty means sqlite in data_dir.
	DB string `yaml:"db" secret:"url"`
	// Retention: executions, their logs and artifacts older than it are pruned (0 keeps them).
	Retention time.Duration `yaml:"retention"`
	// UploadArtifacts: workers send each run's artifacts to the central server at its end,
	// so that a worker on another host serves nothing.
	UploadArtifacts bool `yaml:"upload_artifacts"`
	// MaxArtifacts caps one run's artifacts, in bytes, as uploaded and as the server takes them.
	MaxArtifacts int64 `yaml:"max_artifacts"`
}

// Labs configures remote labs: the central server keeps a queue of
// requests by label that lab agents pull over HTTPS with one token each.
type Labs struct {
	// Hub is the central server the request, board and lab commands speak to (its root URL);
	// empty means execdb.url, else the embedded server at resultsdb.listen.
	Hub string `yaml:"hub" secret:"url"`
	// Token is the lab's own token, for `taskotron lab` (--token wins); the central server keeps
	// only its hash (`taskotron lab token add`).
	Token string `yaml:"token" secret:"token"`
	// DB is the central server's labs database: sqlite:PATH or postgres://…; empty means execdb.db.
	DB string `yaml:"db" secret:"url"`
	// LeaseTimeout: a lab that has not renewed its lease for this long loses it, and the
	// request goes back to the queue with its attempt counted.
	LeaseTimeout time.Duration `yaml:"lease_timeout"`
	// PollWait is the longest a lab's long poll is held open while nothing matches.
	PollWait time.Duration `yaml:"poll_wait"`
	// Spool is the central server's reporter spool for labs' results.
	Spool string `yaml:"spool"`
}

// Notify configures the notifier role: subscriptions to new results,
// delivered by email digests and signed webhooks.
type Notify struct {
	// DB keeps subscriptions and the notifications not yet delivered: sqlite:PATH or postgres://…;
	// empty means sqlite in data_dir.
	DB string `yaml:"db" secret:"url"`
	// Listen is where `taskotron notify` serves its page (subscriptions, delivery state) and status.
	Listen string `yaml:"listen"`
	// PublicURL is the page's address as people reach it, in the links mails carry (confirm a
	// subscription, unsubscribe); empty means http://<notify.listen>.
	PublicURL string `yaml:"public_url"`
	// Queue is the notifier's durable queue, bound to amqp.exchange for Topic.
	Queue string `yaml:"queue"`
	// Topic is the routing key of ResultsDB's new-result messages.
	Topic string `yaml:"topic"`
	// DigestWindow: results for one address within it go out as one message, sent once the
	// oldest of them is this old.
	DigestWindow time.Duration `yaml:"digest_window"`
	// SMTPAddr is the mail server, host:port.
	SMTPAddr string `yaml:"smtp_addr"`
	// SMTPUser and SMTPPassword, when set, log in to the mail server.
	SMTPUser     string `yaml:"smtp_user"`
	SMTPPassword string `yaml:"smtp_password" secret:"token"`
	// SMTPTLS is opportunistic (STARTTLS when offered), starttls (required), tls (implicit TLS) or none.
	SMTPTLS string `yaml:"smtp_tls"`
	// From is the sender of the messages.
	From string `yaml:"from"`
	// ResultsURL is the ResultsDB API (…/api/v2.0) asked whether a result is a regression;
	// empty means resultsdb.url, else the embedded server at resultsdb.listen.
	ResultsURL string `yaml:"results_url" secret:"url"`
	// WebhookTimeout bounds one webhook request.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// RetryMin and RetryMax bound the backoff of a failing webhook or mail server (doubling).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
}

// AMQP configures the broker. An empty URL means the embedded, in-process bus.
type AMQP struct {
	// URL of the broker, amqp://user:password@host:port/vhost.
	URL string `yaml:"url" secret:"url"`
	// Exchange is the topic exchange bus messages arrive on.
	Exchange string `yaml:"exchange"`
	// Queue is the trigger's durable queue, bound to Exchange for Topics.
	Queue string `yaml:"queue"`
	// Topics are the routing-key patterns the trigger listens to.
	Topics []string `yaml:"topics"`
	// JobQueue is the stem of the durable job queues workers consume.
	JobQueue string `yaml:"job_queue"`
	// Prefetch is how many unacked messages the trigger holds at once (a
	// worker is handed runner.concurrency jobs, plus one per job waiting for
	// a retry).
	Prefetch int `yaml:"prefetch"`
	// DeadLetterQueue gets malformed messages with the reason in a header;
	// empty means <queue>.deadletter.
	DeadLetterQueue string `yaml:"dead_letter_queue"`
	// JobExchange routes jobs by arch to <job_queue>.<arch> queues.
	JobExchange string `yaml:"job_exchange"`
	// Watchdog: nothing delivered for this long while the queue has a
	// backlog is logged and counted.
	Watchdog time.Duration `yaml:"watchdog"`
}

// Bodhi configures the Bodhi that updates are looked up in (the bodhi and
// bodhi_comment directives) and that comments go to.
type Bodhi struct {
	// URL is Bodhi's base URL, for update lookups and comments.
	URL string `yaml:"url" secret:"url"`
	// Comments turns comments on updates on (the reporter's, and those of
	// bodhi_comment actions).
	Comments bool `yaml:"comments"`
	// Token is sent as a bearer token with every comment.
	Token string `yaml:"token" secret:"token"`
	// CommentOn lists the outcomes that get a comment.
	CommentOn []string `yaml:"comment_on"`
	// CommentSpan: no identical comment again within it.
	CommentSpan time.Duration `yaml:"comment_span"`
	// Timeout bounds one request; Retries is how often a failed one is retried.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// Koji configures the Koji hub and package downloads (koji, bodhi and
// yumrepoinfo directives).
type Koji struct {
	// URL is the hub's XML-RPC endpoint; PkgURL the packages tree.
	URL    string `yaml:"url" secret:"url"`
	PkgURL string `yaml:"pkg_url" secret:"url"`
	// CacheDir keeps verified downloads; empty turns the cache off.
	CacheDir string `yaml:"cache_dir"`
	// Timeout bounds one request; Retries is how often a failed one is retried.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
	// YumRepoInfo is a yumrepoinfo.conf file (reference §2.7).
	YumRepoInfo string `yaml:"yumrepoinfo"`
}

// DistGit configures raw file downloads from dist-git.
type DistGit struct {
	// URL is the dist-git server raw files come from.
	URL string `yaml:"url" secret:"url"`
	// Timeout bounds one request; Retries is how often a failed one is retried.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// Status configures what the long-running roles show ops.
type Status struct {
	// Listen is where trigger and worker serve /healthz, /metrics, /status and /debug/vars
	// (e.g. 127.0.0.1:9464); empty turns it off (up serves them on its results port).
	Listen string `yaml:"listen"`
}

// Default is the configuration used when no file is given.
func Default() Config {
	return Config{
		DataDir:  ".taskotron",
		LogLevel: "info",
		Trigger: Trigger{
			Arches:      []string{"x86_64"},
			Messages:    "fixtures/messages",
			DedupWindow: 6 * time.Hour,
			FuseDelay:   0,
		},
		Runner: Runner{
			Concurrency:   2,
			ActionTimeout: 20 * time.Minute,
			JobTimeout:    40 * time.Minute,
			MaxAttempts:   3,
			MaxOutput:     10 << 20,
			EnvAllowlist:  []string{"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR"},
			Python:        "python3",
			Sandbox:       "auto",
		},
		Reporter: Reporter{
			TestcaseURL:   "https://fedoraproject.org/wiki/Taskotron/Tasks",
			FlushInterval: 30 * time.Second,
			Retries:       4,
		},
		ResultsDB: ResultsDB{
			Listen:             "127.0.0.1:5001",
			Origin:             "taskotron",
			AdditionalOutcomes: []string{"ABORTED", "CRASHED"},
		},
		ExecDB: ExecDB{Retention: 90 * 24 * time.Hour, UploadArtifacts: true, MaxArtifacts: 256 << 20},
		Labs:   Labs{LeaseTimeout: time.Minute, PollWait: 30 * time.Second},
		Notify: Notify{
			Listen:         "127.0.0.1:5003",
			Queue:          "taskotron-notify",
			Topic:          "resultsdb.result.new",
			DigestWindow:   5 * time.Minute,
			SMTPAddr:       "127.0.0.1:25",
			SMTPTLS:        "opportunistic",
			From:           "taskotron@localhost",
			WebhookTimeout: 10 * time.Second,
			RetryMin:       10 * time.Second,
			RetryMax:       time.Hour,
		},
		AMQP: AMQP{
			Exchange:    "amq.topic",
			Queue:       "taskotron-trigger",
			JobQueue:    "taskotron-jobs",
			JobExchange: "taskotron.jobs",
			Prefetch:    50,
			Watchdog:    time.Minute,
			Topics: []string{
				"#.buildsys.build.state.change",
				"#.buildsys.tag",
				"#.bodhi.update.request.testing",
				"#.bodhi.update.status.testing.koji-build-group.build.complete",
				"#.bodhi.update.edit",
				"#.git.receive",
				"#.pagure.git.receive",
				"#.pungi.compose.status.change",
			},
		},
		Koji: Koji{
			URL:         "https://koji.fedoraproject.org/kojihub",
			PkgURL:      "https://kojipkgs.fedoraproject.org/packages",
			CacheDir:    "cache/koji",
			Timeout:     60 * time.Second,
			Retries:     4,
			YumRepoInfo: "fixtures/koji/yumrepoinfo.conf",
		},
		DistGit: DistGit{URL: "https://src.fedoraproject.org", Timeout: 60 * time.Second, Retries: 4},
		Bodhi: Bodhi{
			URL:         "https://bodhi.fedoraproject.org",
			CommentOn:   []string{"FAILED", "NEEDS_INSPECTION"},
			CommentSpan: 72 * time.Hour,
			Timeout:     60 * time.Second,
			Retries:     4,
		},
	}
}

// Path joins a name below the data folder unless the name is absolute or empty.
func (c Config) Path(name string) string {
	if name == "" || strings.HasPrefix(name, "/") {
		return name
	}
	return strings.TrimSuffix(c.DataDir, "/") + "/" + name
}

// Resolved is the configuration with data_dir absolute and every setting
// that defaults to a place below it filled in (relative paths of those
// settings are taken below data_dir too), so that every role sees the same
// folders. It is the one place these places are defined; Load returns a
// resolved configuration, and resolving again changes nothing.
func (c Config) Resolved() Config {
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	below := func(v *string, dflt string) {
		if *v == "" {
			*v = dflt
		}
		*v = c.Path(*v)
	}
	below(&c.Runner.ArtifactsDir, "artifacts")
	below(&c.Runner.WorkDir, "work")
	below(&c.Runner.Mirror, "mirror")
	below(&c.Reporter.Spool, "spool")
	below(&c.Trigger.JobLog, "jobs.jsonl")
	if c.Trigger.GitCacheDir != "" {
		c.Trigger.GitCacheDir = c.Path(c.Trigger.GitCacheDir)
	}
	if c.Koji.CacheDir != "" {
		c.Koji.CacheDir = c.Path(c.Koji.CacheDir)
	}
	if c.Trigger.StateDB == "" {
		c.Trigger.StateDB = "sqlite:" + c.Path("trigger.sqlite")
	}
	if c.ResultsDB.DB == "" {
		c.ResultsDB.DB = "sqlite:" + c.Path("resultsdb.sqlite")
	}
	if c.ExecDB.DB == "" {
		c.ExecDB.DB = "sqlite:" + c.Path("executions.sqlite")
	}
	if c.Labs.DB == "" {
		c.Labs.DB = c.ExecDB.DB
	}
	below(&c.Labs.Spool, "labs-spool")
	if c.Notify.DB == "" {
		c.Notify.DB = "sqlite:" + c.Path("notify.sqlite")
	}
	return c
}

// Redacted is the configuration as it may be shown: the passwords of the
// URLs and DSNs masked, and tokens replaced by a mask (fields tagged
// secret:"url" or secret:"token").
func (c Config) Redacted() Config {
	var mask func(v reflect.Value)
	mask = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
				mask(f)
				continue
			}
			if f.Kind() != reflect.String || f.String() == "" {
				continue
			}
			switch t.Field(i).Tag.Get("secret") {
			case "url":
				f.SetString(redact.URL(f.String()))
			case "token":
				f.SetString(redact.Mask)
			}
		}
	}
	mask(reflect.ValueOf(&c).Elem())
	return c
}

// OutboxDir is where the roles keep the execution state changes they have
// not yet delivered to the central server.
func (c Config) OutboxDir() string { return c.Path("outbox") }

// QueueDir is the on-disk job queue's folder (no broker configured).
func (c Config) QueueDir() string { return c.Path("queue") }

// DeadLetterFile is where bus messages read from files that were set aside
// go: one file, one format, for `taskotron trigger` and `taskotron up`.
func (c Config) DeadLetterFile() string { return c.Path("dead-letters.jsonl") }

// maxFile caps the configuration file: a few KiB in practice.
const maxFile = 1 << 20

// movedKeys are keys that are gone, with the key to use instead.
var movedKeys = map[string]string{"koji.bodhi_url": "bodhi.url"}

// Load reads the file at path (empty: defaults only) and then applies the
// environment overrides in env (as from os.Environ()).
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := capped.ReadFile(path, maxFile)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cfg, fmt.Errorf("config file %s: does not exist", path)
			}
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := decodeStrict(raw, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	return cfg.Resolved(), nil
}

func decodeStrict(raw []byte, cfg *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return errors.New(oneLine(err.Error()))
	}
	if err := checkMoved(&doc); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(oneLine(err.Error()))
	}
	return nil
}

// checkMoved names the key to use for a key that moved.
func checkMoved(doc *yaml.Node) error {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		section := top.Content[i+1]
		if section.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(section.Content); j += 2 {
			key := top.Content[i].Value + "." + section.Content[j].Value
			if to, ok := movedKeys[key]; ok {
				return fmt.Errorf("line %d: %s is gone: use %s", section.Content[j].Line, key, to)
			}
		}
	}
	return nil
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimPrefix(s, "yaml: ")
	return strings.Join(strings.Fields(s), " ")
}

// EnvPrefix starts every environment override: TASKOTRON_RESULTSDB_URL sets
// resultsdb.url, TASKOTRON_DATA_DIR sets data_dir. Lists are comma-separated.
const EnvPrefix = "TASKOTRON_"

// Keys lists every configuration key in dotted form with its environment name.
func Keys() [][2]string {
	var keys [][2]string
	walk(reflect.ValueOf(Default()), "", func(key string, _ reflect.Value) {
		keys = append(keys, [2]string{key, envName(key)})
	})
	return keys
}

func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func walk(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("yaml")
		if prefix != "" {
			name = prefix + "." + name
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			walk(f, name, fn)
			continue
		}
		fn(name, f)
	}
}

func applyEnv(cfg *Config, env []string) error {
	values := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			values[k] = v
		}
	}
	if len(values) == 0 {
		return nil
	}
	for from, to := range movedKeys {
		if _, ok := values[envName(from)]; ok {
			return fmt.Errorf("environment %s is gone: use %s", envName(from), envName(to))
		}
	}
	var err error
	walk(reflect.ValueOf(cfg).Elem(), "", func(key string, f reflect.Value) {
		name := envName(key)
		raw, ok := values[name]
		if !ok || err != nil {
			return
		}
		if e := setField(f, raw); e != nil {
			err = fmt.Errorf("environment %s: %w", name, e)
		}
	})
	return err
}

func setField(f reflect.Value, raw string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (like 90s or 15m): %q", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", raw)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Map:
		m := map[string]string{}
		for _, pair := range strings.Split(raw, ",") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				return fmt.Errorf("want name=value pairs separated by commas: %q", raw)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
