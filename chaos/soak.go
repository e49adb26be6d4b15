package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskotron-go/taskotron/bus"
)

// Config sizes a soak. Zero values take the defaults of withDefaults.
type Config struct {
	// Root is the checkout the taskotron binary is built from, and where
	// the messages and tasks are read.
	Root string
	// Dir keeps the run's files (binary, logs, data folders); empty means
	// a new temporary folder.
	Dir         string
	AMQPURL     string
	PostgresURL string
	// Messages real-shaped messages and Malformed broken ones are sent,
	// evenly over Duration.
	Messages  int
	Malformed int
	Duration  time.Duration
	// Workers worker processes run Concurrency jobs each.
	Workers     int
	Concurrency int
	// MaxAttempts is the workers' runner.max_attempts (0: the default, 3);
	// a low one makes a job whose workers die end CRASHED sooner.
	MaxAttempts int
	// TaskTime is the longest a stand-in task works.
	TaskTime time.Duration
	// KillEvery is the mean time between SIGKILLs of a random worker
	// (negative: none); a killed worker starts again within two seconds.
	KillEvery time.Duration
	// BrokerRestarts times RabbitMQ is stopped (rabbitmqctl stop_app) for
	// BrokerDown and started again.
	BrokerRestarts int
	BrokerDown     time.Duration
	// ResultsDBStops times ResultsDB is taken away for ResultsDBDown:
	// SIGSTOP and SIGCONT, and SIGKILL and a restart, in turn.
	ResultsDBStops int
	ResultsDBDown  time.Duration
	// TriggerKills times the trigger is SIGKILLed and started again a
	// second later, on the same state.
	TriggerKills int
	// DrainTimeout bounds the wait for the backlog once the stream is sent
	// and the faults are over.
	DrainTimeout time.Duration
	// Settle is how long the harness waits after the backlog drained for
	// late duplicates to show.
	Settle time.Duration
	Seed   uint64
	// Race builds the roles with the race detector; a race they report
	// ends that process (exit 66) and is named in Report.Races.
	Race bool
	Log  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.AMQPURL == "" {
		c.AMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if c.PostgresURL == "" {
		c.PostgresURL = "postgres://postgres@127.0.0.1:5432/test"
	}
	if c.Messages <= 0 {
		c.Messages = 1200
	}
	if c.Malformed < 0 {
		c.Malformed = 0
	}
	if c.Duration <= 0 {
		c.Duration = 90 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 3
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.TaskTime <= 0 {
		c.TaskTime = 1500 * time.Millisecond
	}
	if c.KillEvery == 0 {
		c.KillEvery = 6 * time.Second
	}
	if c.BrokerDown <= 0 {
		c.BrokerDown = 2 * time.Second
	}
	if c.ResultsDBDown <= 0 {
		c.ResultsDBDown = 6 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = mrand.Uint64()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// flushInterval is the workers' reporter.flush_interval: results spooled
// while ResultsDB was away go out this soon after it is back.
const flushInterval = 2 * time.Second

// Report is what a soak measured.
type Report struct {
	Config         Config
	Dir            string
	Sent           int // messages sent (real-shaped + malformed)
	Real           int
	Malformed      int
	PublishRetries int
	Results        tally
	// MalformedDeadLettered counts the malformed messages found in the
	// dead-letter queue with a reason; MalformedNoReason those without;
	// MalformedMissing names those not there.
	MalformedDeadLettered int
	MalformedNoReason     int
	MalformedMissing      []string
	// OtherDeadLettered names real messages set aside: work lost.
	OtherDeadLettered []string
	// JobsLeft and MessagesLeft wait on the queues once every role stopped.
	JobsLeft     int
	MessagesLeft int
	Drained      bool
	Drain        time.Duration
	// Latencies, sorted, are how long each job took from its message's
	// confirm to its first result.
	Latencies   []time.Duration
	Elapsed     time.Duration
	WorkerKills int
	// BrokerOutages, ResultsDBPauses (SIGSTOP) and ResultsDBKills (SIGKILL
	// until serving again) say how long each fault lasted.
	BrokerOutages   []time.Duration
	ResultsDBPauses []time.Duration
	ResultsDBKills  []time.Duration
	TriggerKills    int
	// UnexpectedExits: roles that exited without being told to, after
	// running (and were started again, as systemd would).
	UnexpectedExits map[string][]string
	// FailedStarts: starts that ended at once (the broker away when a
	// killed worker came back); started again a second later.
	FailedStarts int
	// AMQPLeft names queues and exchanges of the run still on the broker.
	AMQPLeft []string
	// Races names the roles' logs with a data race report (with Race).
	Races []string
}

// Failures lists what went wrong; none means the soak passed.
func (r Report) Failures() []string {
	var f []string
	t := r.Results
	if !r.Drained {
		f = append(f, fmt.Sprintf("the backlog did not drain within %s", r.Config.DrainTimeout))
	}
	if t.Missing > 0 {
		f = append(f, fmt.Sprintf("%d jobs missing: %s", t.Missing, strings.Join(t.MissingJobs, "; ")))
	}
	if t.Duplicated > 0 {
		f = append(f, fmt.Sprintf("%d duplicated results: %s", t.Duplicated, strings.Join(t.DuplicatedJobs, "; ")))
	}
	if t.Unexpected > 0 {
		f = append(f, fmt.Sprintf("%d results of jobs nobody expected: %s", t.Unexpected, strings.Join(t.UnexpectedJobs, "; ")))
	}
	if t.Expected == 0 {
		f = append(f, "the stream made no jobs")
	}
	if len(r.MalformedMissing) > 0 {
		f = append(f, fmt.Sprintf("%d malformed messages not dead-lettered: %s", len(r.MalformedMissing), strings.Join(r.MalformedMissing, "; ")))
	}
	if r.MalformedNoReason > 0 {
		f = append(f, fmt.Sprintf("%d malformed messages dead-lettered without a reason", r.MalformedNoReason))
	}
	if len(r.OtherDeadLettered) > 0 {
		f = append(f, fmt.Sprintf("%d real messages dead-lettered: %s", len(r.OtherDeadLettered), strings.Join(r.OtherDeadLettered, "; ")))
	}
	if r.JobsLeft > 0 {
		f = append(f, fmt.Sprintf("%d jobs left on the job queues", r.JobsLeft))
	}
	if r.MessagesLeft > 0 {
		f = append(f, fmt.Sprintf("%d messages left on the trigger's queue", r.MessagesLeft))
	}
	for _, name := range sortedKeys(r.UnexpectedExits) {
		f = append(f, fmt.Sprintf("%s exited on its own %d times (%s)", name, len(r.UnexpectedExits[name]), strings.Join(r.UnexpectedExits[name], "; ")))
	}
	if len(r.Races) > 0 {
		f = append(f, "data races reported in "+strings.Join(r.Races, ", "))
	}
	if len(r.AMQPLeft) > 0 {
		f = append(f, "left on the broker: "+strings.Join(r.AMQPLeft, ", "))
	}
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// soak is one run.
type soak struct {
	cfg     Config
	log     *slog.Logger
	dir     string
	bin     string
	names   names
	rng     *mrand.Rand
	rdbURL  string
	rdb     *role
	trig    *role
	workers []*role
	report  *Report
	mu      sync.Mutex // guards the report's fault lists and the rng
}

// Run runs one soak and reports what it measured. An error means the soak
// could not be run (a service missing, a build failing), not that it found
// something: that is in Report.Failures.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg = cfg.withDefaults()
	s := &soak{cfg: cfg, log: cfg.Log, rng: mrand.New(mrand.NewPCG(cfg.Seed, 0x6368616f73))}
	s.report = &Report{Config: cfg, UnexpectedExits: map[string][]string{}}
	started := time.Now()
	defer func() { s.report.Elapsed = time.Since(started) }()
	if s.dir = cfg.Dir; s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "taskotron-chaos-"); err != nil {
			return nil, err
		}
	}
	s.report.Dir = s.dir
	tok := make([]byte, 4)
	rand.Read(tok)
	s.names = names{prefix: fmt.Sprintf("chaos-%d-%s", time.Now().Unix(), hex.EncodeToString(tok))}

	if err := ping(cfg.AMQPURL); err != nil {
		return nil, fmt.Errorf("RabbitMQ is needed at %s: %w", cfg.AMQPURL, err)
	}
	defer func() {
		deleted, left, cerr := cleanupAMQP(cfg.AMQPURL, s.names)
		s.log.Info("AMQP names deleted", "prefix", s.names.prefix, "count", len(deleted))
		s.report.AMQPLeft = left
		if cerr != nil {
			s.report.AMQPLeft = append(s.report.AMQPLeft, "(cleanup failed: "+cerr.Error()+")")
		}
	}()
	dsn, dropSchema, err := freshSchema(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer dropSchema()

	s.log.Info("building taskotron", "root", cfg.Root)
	s.bin = filepath.Join(s.dir, "taskotron")
	if err := buildTaskotron(ctx, cfg.Root, s.bin, cfg.Race); err != nil {
		return nil, err
	}

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.rdbURL = "http://" + addr
	env := cleanEnv()
	if cfg.Race {
		// A race ends the process at once, so that the soak sees it.
		env = append(env, "GORACE=halt_on_error=1")
	}
	common := append(env, roleEnv(s.names, cfg.AMQPURL, s.rdbURL)...)
	triggerEnv := append(slices.Clone(common),
		"TASKOTRON_DATA_DIR="+filepath.Join(s.dir, "trigger"),
		"TASKOTRON_TRIGGER_JOB_LOG="+filepath.Join(s.dir, "trigger", "jobs.jsonl"),
	)

	exp, err := newExpecter(ctx, triggerEnv)
	if err != nil {
		return nil, err
	}
	templates, err := loadTemplates([]string{filepath.Join(cfg.Root, "testdata", "messages"), filepath.Join(cfg.Root, "fixtures", "messages")}, exp.tr)
	if err != nil {
		return nil, err
	}
	stream, err := buildStream(templates, exp, cfg.Messages, cfg.Malformed, s.rng)
	if err != nil {
		return nil, err
	}
	expected := expectedJobs(stream)
	tasks, mirror := filepath.Join(s.dir, "tasks"), filepath.Join(s.dir, "mirror")
	if err := writeTasks(cfg.Root, tasks, taskNames(stream), cfg.TaskTime); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, s.bin, "mirror", "--tasks", tasks, "--mirror", mirror).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("taskotron mirror: %w\n%s", err, out)
	}

	logs := filepath.Join(s.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	s.rdb = newRole("resultsdb", s.bin, []string{"resultsdb", "serve", "--listen", addr, "--db", dsn},
		append(slices.Clone(common), "TASKOTRON_DATA_DIR="+filepath.Join(s.dir, "resultsdb")), filepath.Join(logs, "resultsdb.log"), s.log)
	s.trig = newRole("trigger", s.bin, []string{"trigger"}, triggerEnv, filepath.Join(logs, "trigger.log"), s.log)
	for i := range cfg.Workers {
		name := fmt.Sprintf("worker-%d", i+1)
		env := append(slices.Clone(common),
			"TASKOTRON_DATA_DIR="+filepath.Join(s.dir, name),
			"TASKOTRON_RUNNER_MIRROR="+mirror,
			"TASKOTRON_REPORTER_FLUSH_INTERVAL="+flushInterval.String(),
		)
		if cfg.MaxAttempts > 0 {
			env = append(env, fmt.Sprintf("TASKOTRON_RUNNER_MAX_ATTEMPTS=%d", cfg.MaxAttempts))
		}
		s.workers = append(s.workers, newRole(name, s.bin, []string{"worker", "--concurrency", fmt.Sprint(cfg.Concurrency), "--arches", "x86_64,noarch"},
			env, filepath.Join(logs, name+".log"), s.log))
	}
	all := append([]*role{s.rdb, s.trig}, s.workers...)
	defer func() {
		for _, r := range all {
			r.stop(10 * time.Second)
			if u := r.unexpectedExits(); len(u) > 0 {
				s.report.UnexpectedExits[r.name] = u
			}
			s.report.FailedStarts += r.failedStarts()
			if raw, err := os.ReadFile(r.logPath); err == nil && strings.Contains(string(raw), "WARNING: DATA RACE") {
				s.report.Races = append(s.report.Races, r.logPath)
			}
		}
	}()

	if err := s.rdb.start(); err != nil {
		return nil, err
	}
	if err := s.waitResultsDB(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	if err := s.trig.start(); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 60*time.Second, "the trigger to declare its queue "+s.names.queue(), func() bool {
		n, err := queueDepth(cfg.AMQPURL, s.names.queue())
		return err == nil && n >= 0
	}); err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, s.trig.logPath)
	}
	for _, w := range s.workers {
		if err := w.start(); err != nil {
			return nil, err
		}
	}
	s.log.Info("soak starting", "seed", cfg.Seed, "messages", cfg.Messages, "malformed", cfg.Malformed, "jobs_expected", sum(expected),
		"duration", cfg.Duration, "workers", cfg.Workers, "dir", s.dir, "prefix", s.names.prefix)

	// The stream and the faults, side by side.
	t0 := time.Now()
	faultsEnd := t0.Add(cfg.Duration)
	var wg sync.WaitGroup
	var pubErr error
	wg.Add(3)
	go func() { defer wg.Done(); pubErr = s.publish(ctx, stream, t0) }()
	go func() { defer wg.Done(); s.killWorkers(ctx, faultsEnd) }()
	go func() { defer wg.Done(); s.outages(ctx, t0) }()
	wg.Wait()
	if pubErr != nil {
		return s.report, fmt.Errorf("publishing the stream: %w", pubErr)
	}
	for _, o := range stream {
		s.report.Sent++
		if o.Malformed != "" {
			s.report.Malformed++
		} else {
			s.report.Real++
		}
	}

	// The backlog: every expected job has its result, every malformed
	// message is in the dead-letter queue, the trigger's queue is empty.
	drainStart := time.Now()
	s.log.Info("stream sent and faults over; waiting for the backlog", "within", cfg.DrainTimeout)
	var last tally
	var lastErr error
	err = waitFor(ctx, cfg.DrainTimeout, "the backlog", func() bool {
		results, err := fetchResults(ctx, s.rdbURL)
		if err != nil {
			lastErr = err
			return false
		}
		last = count(expected, results)
		dl, err1 := queueDepth(cfg.AMQPURL, s.names.deadLetter())
		left, err2 := queueDepth(cfg.AMQPURL, s.names.queue())
		jobs, err3 := s.jobsReady()
		if err := errors.Join(err1, err2, err3); err != nil {
			lastErr = err
			return false
		}
		lastErr = nil
		// Copies of jobs (a redelivery after a broker restart) count too:
		// the workers take them, and find their results stored.
		return last.Missing == 0 && dl >= s.report.Malformed && left == 0 && jobs == 0
	})
	s.report.Drained = err == nil
	s.report.Drain = time.Since(drainStart)
	if err != nil {
		s.log.Error("backlog not drained", "err", err, "last_error", lastErr, "missing", last.Missing, "expected", last.Expected)
	} else {
		s.log.Info("backlog drained", "in", s.report.Drain.Round(100*time.Millisecond))
		time.Sleep(cfg.Settle)
	}

	// Stopping the workers hands back what they hold, so that the queues
	// show every job not acked.
	for _, w := range s.workers {
		if !w.stop(60 * time.Second) {
			s.log.Warn("worker did not stop on SIGTERM within a minute", "worker", w.name)
		}
	}
	s.trig.stop(30 * time.Second)
	results, err := fetchResults(ctx, s.rdbURL)
	if err != nil {
		return s.report, fmt.Errorf("reading the results: %w", err)
	}
	s.report.Results = count(expected, results)
	sentAt := map[jobKey]time.Time{}
	for _, o := range stream {
		for _, k := range o.Jobs {
			if k.Type != "koji_tag" {
				sentAt[k] = o.SentAt
			}
		}
	}
	s.report.Latencies = latencies(results, sentAt)
	if s.report.JobsLeft, err = s.jobsReady(); err != nil {
		return s.report, fmt.Errorf("reading the job queues: %w", err)
	}
	if n, err := queueDepth(cfg.AMQPURL, s.names.queue()); err == nil && n > 0 {
		s.report.MessagesLeft = n
	}
	dead, err := drainDeadLetters(cfg.AMQPURL, s.names.deadLetter())
	if err != nil {
		return s.report, fmt.Errorf("reading the dead-letter queue: %w", err)
	}
	s.classifyDeadLetters(stream, dead)
	return s.report, nil
}

// jobsReady counts the jobs waiting on the run's job queues.
func (s *soak) jobsReady() (int, error) {
	n := 0
	for _, arch := range []string{"x86_64", "noarch"} {
		for _, q := range []string{s.names.jobQueue() + "." + arch, s.names.jobQueue() + "." + arch + ".host"} {
			d, err := queueDepth(s.cfg.AMQPURL, q)
			if err != nil {
				return 0, err
			}
			n += max(0, d)
		}
	}
	return n, nil
}

func sum(m map[jobKey]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (s *soak) classifyDeadLetters(stream []outgoing, dead []deadLettered) {
	byID := map[string]outgoing{}
	for _, o := range stream {
		byID[o.ID] = o
	}
	found := map[string]bool{}
	for _, d := range dead {
		o, ok := byID[d.ID]
		switch {
		case ok && o.Malformed != "":
			if found[d.ID] {
				continue // dead-lettered twice: still one set aside
			}
			found[d.ID] = true
			if d.Reason == "" {
				s.report.MalformedNoReason++
			} else {
				s.report.MalformedDeadLettered++
				s.log.Info("dead-lettered", "kind", o.Malformed, "reason", bus.Truncate(d.Reason, 300))
			}
		case ok:
			s.report.OtherDeadLettered = append(s.report.OtherDeadLettered, fmt.Sprintf("%s from %s: %s", d.ID, o.Template, shortItem(d.Reason)))
		default:
			s.report.OtherDeadLettered = append(s.report.OtherDeadLettered, fmt.Sprintf("%s (not sent by the soak): %s", d.ID, shortItem(d.Reason)))
		}
	}
	for _, o := range stream {
		if o.Malformed != "" && !found[o.ID] {
			s.report.MalformedMissing = append(s.report.MalformedMissing, fmt.Sprintf("%s (%s)", o.ID, o.Malformed))
		}
	}
}

// publish sends the stream evenly over the configured duration.
func (s *soak) publish(ctx context.Context, stream []outgoing, t0 time.Time) error {
	p := &publisher{url: s.cfg.AMQPURL, exchange: s.names.exchange(), log: s.log}
	defer p.close()
	step := s.cfg.Duration / time.Duration(max(1, len(stream)))
	for i, o := range stream {
		if d := time.Until(t0.Add(time.Duration(i) * step)); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		if err := p.publish(ctx, o); err != nil {
			return err
		}
		stream[i].SentAt = time.Now().UTC()
		if (i+1)%100 == 0 {
			s.log.Info("sent", "messages", i+1, "of", len(stream))
		}
	}
	s.report.PublishRetries = p.retries
	return nil
}

func (s *soak) jitter(d time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(float64(d) * (0.5 + s.rng.Float64()))
}

func (s *soak) pick(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// killWorkers SIGKILLs a random running worker now and then until end, and
// starts each again a moment later; it returns once all are running.
func (s *soak) killWorkers(ctx context.Context, end time.Time) {
	if s.cfg.KillEvery < 0 {
		return
	}
	var restarts sync.WaitGroup
	defer restarts.Wait()
	for {
		wait := s.jitter(s.cfg.KillEvery)
		if time.Now().Add(wait).After(end) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var up []*role
		for _, w := range s.workers {
			if w.running() {
				up = append(up, w)
			}
		}
		if len(up) == 0 {
			continue
		}
		w := up[s.pick(len(up))]
		if err := w.kill(); err != nil {
			s.log.Warn("kill failed", "worker", w.name, "err", err)
			continue
		}
		s.mu.Lock()
		s.report.WorkerKills++
		s.mu.Unlock()
		back := time.Duration(200+s.pick(1800)) * time.Millisecond
		s.log.Info("worker SIGKILLed", "worker", w.name, "back_in", back)
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			time.Sleep(back)
			if err := w.start(); err != nil {
				s.log.Error("worker restart failed", "worker", w.name, "err", err)
			}
		}()
	}
}

// outages restarts the broker and takes ResultsDB away, one at a time,
// spread over the stream.
func (s *soak) outages(ctx context.Context, t0 time.Time) {
	var kinds []string
	for range s.cfg.BrokerRestarts {
		kinds = append(kinds, "broker")
	}
	for i := range s.cfg.ResultsDBStops {
		if i%2 == 0 {
			kinds = append(kinds, "resultsdb-stop")
		} else {
			kinds = append(kinds, "resultsdb-kill")
		}
	}
	for range s.cfg.TriggerKills {
		kinds = append(kinds, "trigger-kill")
	}
	s.mu.Lock()
	s.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	s.mu.Unlock()
	for i, kind := range kinds {
		at := t0.Add(s.cfg.Duration * time.Duration(i+1) / time.Duration(len(kinds)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		switch kind {
		case "broker":
			s.log.Info("restarting RabbitMQ", "down", s.cfg.BrokerDown)
			took, err := restartBroker(s.cfg.BrokerDown)
			if err != nil {
				s.log.Error("broker restart", "err", err)
			}
			s.mu.Lock()
			s.report.BrokerOutages = append(s.report.BrokerOutages, took)
			s.mu.Unlock()
			s.log.Info("RabbitMQ back", "outage", took.Round(100*time.Millisecond))
		case "trigger-kill":
			s.log.Info("trigger SIGKILL", "restart_in", time.Second)
			if err := s.trig.kill(); err != nil {
				s.log.Error("SIGKILL", "err", err)
				continue
			}
			time.Sleep(time.Second)
			if err := s.trig.start(); err != nil {
				s.log.Error("trigger restart", "err", err)
			}
			s.mu.Lock()
			s.report.TriggerKills++
			s.mu.Unlock()
		case "resultsdb-stop":
			s.log.Info("ResultsDB SIGSTOP", "for", s.cfg.ResultsDBDown)
			began := time.Now()
			if err := s.rdb.signal(syscall.SIGSTOP); err != nil {
				s.log.Error("SIGSTOP", "err", err)
				continue
			}
			time.Sleep(s.cfg.ResultsDBDown)
			if err := s.rdb.signal(syscall.SIGCONT); err != nil {
				s.log.Error("SIGCONT", "err", err)
			}
			s.mu.Lock()
			s.report.ResultsDBPauses = append(s.report.ResultsDBPauses, time.Since(began))
			s.mu.Unlock()
		case "resultsdb-kill":
			s.log.Info("ResultsDB SIGKILL", "restart_in", s.cfg.ResultsDBDown)
			began := time.Now()
			if err := s.rdb.kill(); err != nil {
				s.log.Error("SIGKILL", "err", err)
				continue
			}
			time.Sleep(s.cfg.ResultsDBDown)
			if err := s.rdb.start(); err != nil {
				s.log.Error("ResultsDB restart", "err", err)
			}
			if err := s.waitResultsDB(ctx, 60*time.Second); err != nil {
				s.log.Error("ResultsDB restart", "err", err)
			}
			s.mu.Lock()
			s.report.ResultsDBKills = append(s.report.ResultsDBKills, time.Since(began))
			s.mu.Unlock()
		}
	}
}

func (s *soak) waitResultsDB(ctx context.Context, within time.Duration) error {
	return waitResultsDB(ctx, s.rdbURL, s.rdb, within)
}

// waitResultsDB waits until the ResultsDB at base answers its health check.
func waitResultsDB(ctx context.Context, base string, rdb *role, within time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := waitFor(ctx, within, "ResultsDB to answer at "+base, func() bool {
		resp, err := client.Get(base + "/api/v2.0/healthcheck")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, rdb.logPath)
	}
	return nil
}

// buildTaskotron builds the taskotron binary of the checkout at root into
// bin.
func buildTaskotron(ctx context.Context, root, bin string, race bool) error {
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.CommandContext(ctx, "go", append(args, "./cmd/taskotron")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/taskotron in %s: %w\n%s", root, err, out)
	}
	return nil
}

// roleEnv is the configuration every role of a run shares: the run's own
// AMQP names and its ResultsDB.
func roleEnv(n names, amqpURL, rdbURL string) []string {
	return []string{
		"TASKOTRON_LOG_LEVEL=info",
		"TASKOTRON_AMQP_URL=" + amqpURL,
		"TASKOTRON_AMQP_EXCHANGE=" + n.exchange(),
		"TASKOTRON_AMQP_QUEUE=" + n.queue(),
		// Every message of the stream reaches the trigger, which ignores
		// those it does not handle, on an exchange of the run's own.
		"TASKOTRON_AMQP_TOPICS=#",
		"TASKOTRON_AMQP_JOB_EXCHANGE=" + n.jobExchange(),
		"TASKOTRON_AMQP_JOB_QUEUE=" + n.jobQueue(),
		"TASKOTRON_RESULTSDB_URL=" + rdbURL + "/api/v2.0",
	}
}

// waitFor polls cond every half second until it holds, ctx ends or within
// passes; the error names what was waited for.
func waitFor(ctx context.Context, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", within, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// freshSchema makes a new schema in the PostgreSQL test database and says
// how to reach it and how to drop it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	tok := make([]byte, 6)
	rand.Read(tok)
	schema := "chaos_" + hex.EncodeToString(tok)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL is needed at %s: %w", base, err)
	}
	defer conn.Close(cctx)
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s in %s: %w", schema, base, err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	}
	return base + sep + "search_path=" + schema, drop, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cleanEnv is the harness's environment without TASKOTRON_ settings, so
// that the roles run with the soak's configuration only.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKOTRON_") {
			out = append(out, kv)
		}
	}
	return out
}
