package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/sandbox"
)

// The job path benchmark (BenchmarkJobPath): the production shape — the
// trigger, RabbitMQ, one worker running 8 jobs at once and the results
// server, as processes built from this checkout — under a steady stream of
// Koji build messages, each making one job of the trivial shell task
// nvr-format. It finds the highest rate held without a growing backlog,
// the latency from a message's publish to its result's showing in the
// ResultsDB API, and the CPU the roles spend per job beside the task's.

// JobPathConfig sizes a job path run.
type JobPathConfig struct {
	Root, Dir   string
	AMQPURL     string
	PostgresURL string
	// Store is the results server's database: "sqlite" or "postgres".
	Store string
	// Step is how long each rate is held (the issue asks for 60 s).
	Step time.Duration
	// Start is the search's first rate; each rate held doubles it, and
	// after the first one not held the search halves the gap, up to
	// MaxSteps steps in all.
	Start    float64
	MaxSteps int
	// LatencyRate is the rate latency is measured at.
	LatencyRate float64
	Concurrency int
	// WorkDir, when set, is the worker's runner.work_dir (its runs'
	// folders), for comparing filesystems; by default under the worker's
	// data_dir.
	WorkDir string
	// Profile, TriggerProfile and ResultsDBProfile, when set, are where
	// the worker, the trigger and the results server write a CPU profile
	// of the whole run.
	Profile, TriggerProfile, ResultsDBProfile string
	Log                                       *slog.Logger
}

func (c JobPathConfig) withDefaults() JobPathConfig {
	if c.AMQPURL == "" {
		c.AMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if c.PostgresURL == "" {
		c.PostgresURL = "postgres://postgres@127.0.0.1:5432/test"
	}
	if c.Store == "" {
		c.Store = "sqlite"
	}
	if c.Step <= 0 {
		c.Step = 60 * time.Second
	}
	if c.Start <= 0 {
		c.Start = 25
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 7
	}
	if c.LatencyRate <= 0 {
		c.LatencyRate = 50
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// jobPathRules make one nvr-format job (x86_64) of each completed Koji
// build.
const jobPathRules = "- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [nvr-format], arches: [x86_64]}]\n"

// JobPathStep is one rate held for a step.
type JobPathStep struct {
	Rate     float64 // asked for
	Sent     int
	SentRate float64 // what the publishers reached
	// Backlog is messages published whose results had not shown yet: at
	// the step's end, and its growth from the step's second quarter to its
	// last.
	Backlog, Growth int
	Drain           time.Duration // from the step's end until every result showed
	Drained         bool
	Sustained       bool
	Why             string // why not sustained
	// CPU per job over the step and its drain: each role's own, and the
	// worker's children (bwrap and the task).
	RoleCPU  map[string]time.Duration
	ChildCPU time.Duration
	// BrokerCPU is RabbitMQ's (zero where its process is not found here),
	// HarnessCPU this benchmark's own (publishers, backlog polls), and
	// MachineCPU everything the machine did over the step, per job: what
	// is left of it beside the roles, their children, the broker and the
	// harness is the kernel's and others' work.
	BrokerCPU, HarnessCPU, MachineCPU time.Duration
	// Unseen counts the latency step's jobs whose results had not shown
	// when it ended: their latencies are lower bounds.
	Unseen int
	// Busy is the share of the machine's CPU time used by anything over
	// the step (the machine is shared: others' work shows here).
	Busy float64
}

// PipelineCPU is the roles' own CPU per job.
func (s JobPathStep) PipelineCPU() time.Duration {
	var t time.Duration
	for _, d := range s.RoleCPU {
		t += d
	}
	return t
}

// JobPathReport is what a job path run measured.
type JobPathReport struct {
	Config JobPathConfig
	Dir    string
	Steps  []JobPathStep
	// Best is the highest step sustained (nil when none was).
	Best *JobPathStep
	// Latency is each job's publish → result shown at LatencyRate, sorted;
	// LatencyStep is that step.
	Latency     []time.Duration
	LatencyStep JobPathStep
	// TaskAlone and TaskSandboxed are the CPU of one run of the task's
	// script, measured here: as a plain process, and in bwrap as the
	// runner makes it.
	TaskAlone, TaskSandboxed time.Duration
	PollEvery                time.Duration
	Elapsed                  time.Duration
	// Load is the machine's load average over a minute when the run began.
	Load string
}

// jobPath is a running pipeline.
type jobPath struct {
	cfg     JobPathConfig
	log     *slog.Logger
	dir     string
	names   names
	rdbURL  string
	rdb     *role
	trig    *role
	worker  *role
	exp     *expecter
	tpl     contract.Message
	taskDir string
	seq     atomic.Int64
	cleanup []func()
	// brokerPID is RabbitMQ's process here, 0 where it is elsewhere.
	brokerPID int
}

// RunJobPath runs the benchmark. An error means it could not run.
func RunJobPath(ctx context.Context, cfg JobPathConfig) (*JobPathReport, error) {
	cfg = cfg.withDefaults()
	started := time.Now()
	p, err := startJobPath(ctx, cfg)
	if p != nil {
		defer p.close()
	}
	if err != nil {
		return nil, err
	}
	rep := &JobPathReport{Config: cfg, Dir: p.dir}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Fields(string(raw))[0]
	}
	defer func() { rep.Elapsed = time.Since(started) }()
	if rep.TaskAlone, rep.TaskSandboxed, err = p.taskCPU(ctx, 100); err != nil {
		return rep, err
	}
	w := newWatcher(p.rdbURL)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go w.run(wctx)

	// The search, polled seldom (the polls cost the results server CPU
	// that would count against the jobs); latency after, polled often.
	w.every.Store(int64(250 * time.Millisecond))
	rate, lo, hi := cfg.Start, 0.0, 0.0
	for range cfg.MaxSteps {
		s, _, err := p.step(ctx, w, rate, false)
		if err != nil {
			return rep, err
		}
		rep.Steps = append(rep.Steps, s)
		cfg.Log.Info("step", "rate", rate, "sustained", s.Sustained, "why", s.Why, "backlog", s.Backlog, "pipeline_cpu_per_job", s.PipelineCPU())
		if s.Sustained {
			lo = rate
		} else {
			hi = rate
		}
		if !s.Drained {
			break // the next step would measure this one's backlog
		}
		switch {
		case hi == 0:
			rate *= 2
		case lo == 0:
			rate /= 2
		default:
			rate = (lo + hi) / 2
		}
		if hi > 0 && lo > 0 && (hi-lo)/lo < 0.1 {
			break
		}
	}
	for i := range rep.Steps {
		if rep.Steps[i].Sustained && (rep.Best == nil || rep.Steps[i].Rate > rep.Best.Rate) {
			rep.Best = &rep.Steps[i]
		}
	}
	rep.PollEvery = 10 * time.Millisecond
	w.every.Store(int64(rep.PollEvery))
	ls, lat, err := p.step(ctx, w, cfg.LatencyRate, true)
	if err != nil {
		return rep, err
	}
	rep.LatencyStep, rep.Latency = ls, lat
	return rep, nil
}

func startJobPath(ctx context.Context, cfg JobPathConfig) (*jobPath, error) {
	p := &jobPath{cfg: cfg, log: cfg.Log, dir: cfg.Dir, brokerPID: rabbitMQPID()}
	var err error
	if p.dir == "" {
		if p.dir, err = os.MkdirTemp("", "taskotron-jobpath-"); err != nil {
			return nil, err
		}
		p.cleanup = append(p.cleanup, func() { os.RemoveAll(p.dir) })
	}
	tok := make([]byte, 4)
	rand.Read(tok)
	p.names = names{prefix: fmt.Sprintf("jobpath-%d-%s", time.Now().Unix(), hex.EncodeToString(tok))}
	if err := ping(cfg.AMQPURL); err != nil {
		return p, fmt.Errorf("RabbitMQ is needed at %s: %w", cfg.AMQPURL, err)
	}
	p.cleanup = append(p.cleanup, func() { cleanupAMQP(cfg.AMQPURL, p.names) })
	var dsn string
	switch cfg.Store {
	case "sqlite":
		dsn = "sqlite:" + filepath.Join(p.dir, "resultsdb.sqlite")
	case "postgres":
		d, drop, err := freshSchema(ctx, cfg.PostgresURL)
		if err != nil {
			return p, err
		}
		dsn = d
		p.cleanup = append(p.cleanup, drop)
	default:
		return p, fmt.Errorf("store %q: want sqlite or postgres", cfg.Store)
	}
	bin := filepath.Join(p.dir, "taskotron")
	if err := buildTaskotron(ctx, cfg.Root, bin, false); err != nil {
		return p, err
	}
	addr, err := freeAddr()
	if err != nil {
		return p, err
	}
	p.rdbURL = "http://" + addr
	rules := filepath.Join(p.dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(jobPathRules), 0o644); err != nil {
		return p, err
	}
	common := append(cleanEnv(), roleEnv(p.names, cfg.AMQPURL, p.rdbURL)...)
	triggerEnv := append(slices.Clone(common),
		"TASKOTRON_DATA_DIR="+filepath.Join(p.dir, "trigger"),
		"TASKOTRON_TRIGGER_JOB_LOG="+filepath.Join(p.dir, "trigger", "jobs.jsonl"),
		"TASKOTRON_TRIGGER_RULES="+rules,
	)
	if p.exp, err = newExpecter(ctx, triggerEnv); err != nil {
		return p, err
	}
	raw, err := os.ReadFile(filepath.Join(cfg.Root, "fixtures", "messages", "koji-build-state-change__6.json"))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(raw, &p.tpl); err != nil {
		return p, fmt.Errorf("koji-build-state-change__6.json: %w", err)
	}
	if keys, _, err := p.exp.jobs(p.tpl); err != nil || len(keys) != 1 || keys[0].Task != "nvr-format" {
		return p, fmt.Errorf("the template message makes jobs %v (%v), want one nvr-format job", keys, err)
	}
	tasks, mirror := filepath.Join(p.dir, "tasks"), filepath.Join(p.dir, "mirror")
	if err := writeTasks(cfg.Root, tasks, []string{"nvr-format"}, 0); err != nil {
		return p, err
	}
	p.taskDir = filepath.Join(tasks, "nvr-format")
	if out, err := exec.CommandContext(ctx, bin, "mirror", "--tasks", tasks, "--mirror", mirror).CombinedOutput(); err != nil {
		return p, fmt.Errorf("taskotron mirror: %w\n%s", err, out)
	}
	logs := filepath.Join(p.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return p, err
	}
	rargs := []string{"resultsdb", "serve", "--listen", addr, "--db", dsn}
	if cfg.ResultsDBProfile != "" {
		rargs = append(rargs, "--cpu-profile", cfg.ResultsDBProfile)
	}
	p.rdb = newRole("resultsdb", bin, rargs,
		append(slices.Clone(common), "TASKOTRON_DATA_DIR="+filepath.Join(p.dir, "resultsdb")), filepath.Join(logs, "resultsdb.log"), p.log)
	targs := []string{"trigger"}
	if cfg.TriggerProfile != "" {
		targs = append(targs, "--cpu-profile", cfg.TriggerProfile)
	}
	p.trig = newRole("trigger", bin, targs, triggerEnv, filepath.Join(logs, "trigger.log"), p.log)
	wargs := []string{"worker", "--concurrency", strconv.Itoa(cfg.Concurrency), "--arches", "x86_64"}
	if cfg.Profile != "" {
		wargs = append(wargs, "--cpu-profile", cfg.Profile)
	}
	wenv := append(slices.Clone(common), "TASKOTRON_DATA_DIR="+filepath.Join(p.dir, "worker"), "TASKOTRON_RUNNER_MIRROR="+mirror)
	if cfg.WorkDir != "" {
		wenv = append(wenv, "TASKOTRON_RUNNER_WORK_DIR="+cfg.WorkDir)
	}
	p.worker = newRole("worker", bin, wargs, wenv, filepath.Join(logs, "worker.log"), p.log)
	p.cleanup = append(p.cleanup, func() {
		for _, r := range []*role{p.worker, p.trig, p.rdb} {
			r.stop(60 * time.Second)
		}
	})
	if err := p.rdb.start(); err != nil {
		return p, err
	}
	if err := waitResultsDB(ctx, p.rdbURL, p.rdb, 60*time.Second); err != nil {
		return p, err
	}
	if err := p.trig.start(); err != nil {
		return p, err
	}
	if err := waitFor(ctx, 60*time.Second, "the trigger to declare its queue", func() bool {
		n, err := queueDepth(cfg.AMQPURL, p.names.queue())
		return err == nil && n >= 0
	}); err != nil {
		return p, fmt.Errorf("%w (see %s)", err, p.trig.logPath)
	}
	if err := p.worker.start(); err != nil {
		return p, err
	}
	// A first job through, so that the runs measured find the task's
	// checkout cached, as a worker does all day.
	w := newWatcher(p.rdbURL)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	w.every.Store(int64(50 * time.Millisecond))
	go w.run(wctx)
	pub := &publisher{url: cfg.AMQPURL, exchange: p.names.exchange(), log: p.log}
	defer pub.close()
	for range 3 {
		o, _, err := p.message()
		if err != nil {
			return p, err
		}
		if err := pub.publish(ctx, o); err != nil {
			return p, err
		}
	}
	if err := waitFor(ctx, 2*time.Minute, "the first results", func() bool { return w.count.Load() >= 3 }); err != nil {
		return p, fmt.Errorf("%w (see %s)", err, filepath.Join(logs, "worker.log"))
	}
	return p, nil
}

func (p *jobPath) close() {
	for i := len(p.cleanup) - 1; i >= 0; i-- {
		p.cleanup[i]()
	}
}

// message makes the next message of the stream and names its job's item.
func (p *jobPath) message() (outgoing, string, error) {
	n := int(p.seq.Add(1))
	msg, err := makeUnique(p.tpl, n)
	if err != nil {
		return outgoing{}, "", err
	}
	body, err := json.Marshal(msg.Body)
	if err != nil {
		return outgoing{}, "", err
	}
	nvr := fmt.Sprintf("%v-%v-%v", msg.Body["name"], msg.Body["version"], msg.Body["release"])
	return outgoing{ID: msg.ID, Topic: msg.Topic, Headers: msg.Headers, Body: body}, nvr, nil
}

// publishers send a step's messages side by side: one alone waits for
// each confirm and would fall behind at a few hundred a second.
const publishers = 8

// step publishes at rate for the configured step, then waits for the
// backlog to drain, and measures the roles' CPU over both. With latency it
// also says how long each job took from its publish to its result showing.
func (p *jobPath) step(ctx context.Context, w *watcher, rate float64, latency bool) (JobPathStep, []time.Duration, error) {
	s := JobPathStep{Rate: rate}
	n := int(rate * p.cfg.Step.Seconds())
	msgs := make([]outgoing, n)
	items := make([]string, n)
	for i := range n {
		var err error
		if msgs[i], items[i], err = p.message(); err != nil {
			return s, nil, err
		}
	}
	sentAt := make([]time.Time, n)
	if latency {
		w.track(items)
	}
	cpu0, err := p.cpu()
	if err != nil {
		return s, nil, err
	}
	broker0, _, _ := procCPU(p.brokerPID)
	harness0, _, _ := procCPU(os.Getpid())
	busy0, total0 := machineCPU()
	done0 := w.count.Load()
	var sent atomic.Int64
	next := make(chan int)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := &publisher{url: p.cfg.AMQPURL, exchange: p.names.exchange(), log: p.log}
			defer pub.close()
			for i := range next {
				sentAt[i] = time.Now()
				if err := pub.publish(ctx, msgs[i]); err != nil {
					errs <- err
					return
				}
				sent.Add(1)
			}
		}()
	}
	// Backlog samples, once a second.
	var samples []int
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				samples = append(samples, int(sent.Load()-(w.count.Load()-done0)))
			}
		}
	}()
	t0 := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var pubErr error
send:
	for i := range n {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case next <- i:
		case pubErr = <-errs:
			break send
		case <-ctx.Done():
			pubErr = ctx.Err()
			break send
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stopSampling)
	<-sampleDone
	if pubErr != nil {
		return s, nil, fmt.Errorf("publishing: %w", pubErr)
	}
	s.Sent = int(sent.Load())
	s.SentRate = float64(s.Sent) / elapsed.Seconds()
	s.Backlog = s.Sent - int(w.count.Load()-done0)
	if q := len(samples) / 4; q > 0 {
		s.Growth = mean(samples[len(samples)-q:]) - mean(samples[q:2*q])
	}
	drainStart := time.Now()
	err = waitFor(ctx, max(30*time.Second, p.cfg.Step), "the step's results", func() bool { return w.count.Load()-done0 >= int64(s.Sent) })
	s.Drain, s.Drained = time.Since(drainStart), err == nil
	cpu1, cerr := p.cpu()
	if cerr != nil {
		return s, nil, cerr
	}
	perJob := func(d time.Duration) time.Duration { return d / time.Duration(max(1, s.Sent)) }
	if busy1, total1 := machineCPU(); total1 > total0 {
		s.Busy = float64(busy1-busy0) / float64(total1-total0)
		s.MachineCPU = perJob(time.Duration(busy1-busy0) * 10 * time.Millisecond)
	}
	if p.brokerPID != 0 {
		broker1, _, _ := procCPU(p.brokerPID)
		s.BrokerCPU = perJob(broker1 - broker0)
	}
	harness1, _, _ := procCPU(os.Getpid())
	s.HarnessCPU = perJob(harness1 - harness0)
	s.RoleCPU = map[string]time.Duration{}
	for name, c := range cpu1.own {
		s.RoleCPU[name] = (c - cpu0.own[name]) / time.Duration(max(1, s.Sent))
	}
	s.ChildCPU = (cpu1.children - cpu0.children) / time.Duration(max(1, s.Sent))
	// Held: the publishers kept the rate, the backlog did not grow by more
	// than a second's messages (plus the jobs the worker holds) from the
	// step's second quarter to its last, and it ended under three seconds'.
	slack := int(rate) + 2*p.cfg.Concurrency
	switch {
	case !s.Drained:
		s.Why = fmt.Sprintf("the backlog did not drain within %s", max(30*time.Second, p.cfg.Step))
	case s.SentRate < 0.95*rate:
		s.Why = fmt.Sprintf("the publishers reached %.0f/s only", s.SentRate)
	case s.Growth > slack:
		s.Why = fmt.Sprintf("the backlog grew by %d", s.Growth)
	case s.Backlog > 3*int(rate)+2*p.cfg.Concurrency:
		s.Why = fmt.Sprintf("%d results behind at the end", s.Backlog)
	default:
		s.Sustained = true
	}
	if !latency {
		return s, nil, nil
	}
	seen := w.untrack()
	now := time.Now()
	var lat []time.Duration
	for i, item := range items {
		switch at, ok := seen[item]; {
		case sentAt[i].IsZero():
		case ok:
			lat = append(lat, at.Sub(sentAt[i]))
		default:
			// Not shown yet: its latency is at least this (see Unseen).
			lat = append(lat, now.Sub(sentAt[i]))
			s.Unseen++
		}
	}
	slices.Sort(lat)
	return s, lat, nil
}

func mean(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t / max(1, len(v))
}

// roleCPU is the roles' CPU so far: each one's own, and the worker's
// children that ended (bwrap and the task processes under it).
type roleCPU struct {
	own      map[string]time.Duration
	children time.Duration
}

func (p *jobPath) cpu() (roleCPU, error) {
	c := roleCPU{own: map[string]time.Duration{}}
	for _, r := range []*role{p.trig, p.worker, p.rdb} {
		own, children, err := procCPU(r.pid())
		if err != nil {
			return c, fmt.Errorf("%s: %w", r.name, err)
		}
		c.own[r.name] = own
		if r == p.worker {
			c.children = children
		}
	}
	return c, nil
}

// rabbitMQPID finds RabbitMQ's Erlang VM among this machine's processes
// (0 when it runs elsewhere): its command line boots the rabbit application.
func rabbitMQPID() int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmd), "beam.smp") && strings.Contains(string(cmd), "\x00rabbit\x00boot\x00") {
			return pid
		}
	}
	return 0
}

// procCPU reads a process's user+system time and that of its children
// waited for, from /proc/<pid>/stat (in clock ticks of 10 ms).
func procCPU(pid int) (own, children time.Duration, err error) {
	if pid == 0 {
		return 0, 0, fmt.Errorf("not running")
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command's closing parenthesis, from state (3).
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	tick := func(s string) time.Duration {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.Duration(n) * 10 * time.Millisecond
	}
	return tick(f[11]) + tick(f[12]), tick(f[13]) + tick(f[14]), nil
}

// machineCPU reads the machine's busy and total CPU time, in ticks, from
// the first line of /proc/stat (idle and iowait are not busy).
func machineCPU() (busy, total int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// taskCPU measures the task's own script, run n times here as the runner
// would run it: a plain process, and in bwrap.
func (p *jobPath) taskCPU(ctx context.Context, n int) (alone, sandboxed time.Duration, err error) {
	argv := []string{"./nvr_format.sh", "xchat-0.5-1.fc20", "koji_build", "x86_64"}
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + p.dir}
	runs := func(name string, args []string) (time.Duration, error) {
		var total time.Duration
		for range n {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Dir, cmd.Env = p.taskDir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("%s: %w: %s", name, err, out)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return total / time.Duration(n), nil
	}
	if alone, err = runs(argv[0], argv[1:]); err != nil {
		return 0, 0, err
	}
	bwrap, args, err := sandbox.Command(sandbox.Auto, sandbox.Spec{Dir: p.taskDir, Writable: []string{p.taskDir}}, argv)
	if err != nil {
		return 0, 0, err
	}
	sandboxed, err = runs(bwrap, args)
	return alone, sandboxed, err
}

// watcher follows the results ResultsDB shows, polling for those
// submitted since the last it saw: it counts them and, for the items it is
// told to track, notes when each first showed.
type watcher struct {
	base   string
	client *http.Client
	every  atomic.Int64 // poll interval
	count  atomic.Int64 // results seen
	ids    map[int64]bool
	since  string

	mu      sync.Mutex
	tracked map[string]bool
	seen    map[string]time.Time
}

func newWatcher(base string) *watcher {
	w := &watcher{base: base, client: &http.Client{Timeout: 30 * time.Second}, ids: map[int64]bool{}}
	w.every.Store(int64(250 * time.Millisecond))
	return w
}

func (w *watcher) track(items []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tracked, w.seen = map[string]bool{}, map[string]time.Time{}
	for _, it := range items {
		w.tracked[it] = true
	}
}

func (w *watcher) untrack() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen
	w.tracked, w.seen = nil, nil
	return seen
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := w.poll(ctx); err != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(w.every.Load())):
		}
	}
}

// poll reads every result submitted since the last one seen (since is
// inclusive: results seen before are skipped by id).
func (w *watcher) poll(ctx context.Context) error {
	const limit = 1000
	for {
		q := url.Values{"_sort": {"asc:submit_time"}, "limit": {strconv.Itoa(limit)}}
		if w.since != "" {
			q.Set("since", w.since)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/api/v2.0/results?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		resp, err := w.client.Do(req)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET results: %s", resp.Status)
		}
		now := time.Now()
		var doc struct {
			Data []stored `json:"data"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return err
		}
		fresh := 0
		w.mu.Lock()
		for _, r := range doc.Data {
			if w.ids[r.ID] {
				continue
			}
			w.ids[r.ID] = true
			fresh++
			if item := r.first("item"); w.tracked[item] {
				if _, ok := w.seen[item]; !ok {
					w.seen[item] = now
				}
			}
			w.since = r.SubmitTime
		}
		w.mu.Unlock()
		w.count.Add(int64(fresh))
		if len(doc.Data) < limit || fresh == 0 {
			return nil
		}
	}
}
