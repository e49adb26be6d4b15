package labs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/directives"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/results"
	"github.com/taskotron-go/taskotron/runner"
)

// AgentOptions configure a lab agent.
type AgentOptions struct {
	// Hub is the central server's root URL; Token the lab's token.
	Hub   string
	Token string
	// Board names what this agent offers (default: the lab's name);
	// Labels are its labels (none: those put with `board put`).
	Board  string
	Labels Labels
	// Concurrency is how many requests run at once (default 1).
	Concurrency int
	// Config is the runner's (artifacts_dir, work_dir, timeouts, sandbox):
	// a lab holds no other secret than its token.
	Config config.Config
	// PollWait is how long one long poll waits (default 30 s; the central
	// server may cut it shorter).
	PollWait time.Duration
	// MaxArtifacts bounds one run's upload (default 256 MiB).
	MaxArtifacts int64
	Log          *slog.Logger
	// OnRun, when set, hears of every request the agent ended (test hook).
	OnRun func(Request, RunAnswer)
}

// Agent is a lab agent: it makes outbound HTTP(S) connections only (behind
// NAT it needs no port of its own), long-polls the central server for the
// next request its labels match, holds the lease by heartbeat, runs the
// task with the same runner as every worker (the task from the central
// server's mirror), streams the log and sends the run back.
type Agent struct {
	opts   AgentOptions
	log    *slog.Logger
	client *Client
	logs   *execdb.Client
	runner *runner.Runner
	agent  string

	mu      sync.Mutex
	actions map[string]string // request id -> the action its run is in
}

// ErrTokenRefused is a token the central server does not take: the agent
// cannot go on.
var ErrTokenRefused = errors.New("lab token refused")

// NewAgent makes an agent.
func NewAgent(o AgentOptions) (*Agent, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Token == "" {
		return nil, errors.New("a lab needs its token: --token, TASKOTRON_LABS_TOKEN or labs.token (taskotron lab token add LAB prints one)")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.MaxArtifacts <= 0 {
		o.MaxArtifacts = 256 << 20
	}
	if o.Board != "" {
		if err := CheckLabName(o.Board); err != nil {
			return nil, fmt.Errorf("board %w", err)
		}
	}
	if err := o.Labels.Check(); err != nil {
		return nil, err
	}
	c, err := NewClient(o.Hub, o.Token, nil)
	if err != nil {
		return nil, err
	}
	logs, err := execdb.NewClient(c.Hub(), o.Token, nil)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	a := &Agent{opts: o, log: o.Log, client: c, logs: logs, agent: fmt.Sprintf("%s:%d", host, os.Getpid()), actions: map[string]string{}}
	o.Config = o.Config.Resolved()
	a.opts.Config = o.Config
	a.runner = runner.New(runner.Options{Config: o.Config, Log: o.Log.With("role", "runner"), OnAction: a.action})
	return a, nil
}

func (a *Agent) action(uuid, action string) {
	a.mu.Lock()
	a.actions[uuid] = action
	a.mu.Unlock()
}

func (a *Agent) currentAction(uuid string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.actions[uuid]
}

// refused turns a 401 into the agent's one clear line.
func (a *Agent) refused(err error) error {
	if IsStatus(err, http.StatusUnauthorized) {
		var se *StatusError
		errors.As(err, &se)
		return fmt.Errorf("%w by the central server %s: %s", ErrTokenRefused, a.client.Hub(), se.Message)
	}
	return nil
}

// Join checks the token with the central server and names the lab. A hub
// that cannot be reached is waited for, with a line saying so.
func (a *Agent) Join(ctx context.Context) (string, error) {
	failures := 0
	for {
		lab, err := a.client.WhoAmI(ctx)
		if err == nil {
			return lab, nil
		}
		if r := a.refused(err); r != nil {
			return "", r
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		failures++
		wait := min(time.Duration(failures)*time.Second, 30*time.Second)
		if failures == 1 || failures%10 == 0 {
			a.log.Error("cannot reach the central server; trying again", "hub", a.client.Hub(), "err", err, "retry_in", wait)
		}
		if !sleep(ctx, wait) {
			return "", ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run works until ctx ends: a running request is then handed back. It
// returns an error wrapping ErrTokenRefused when the central server refuses
// the token (it was revoked, or is wrong).
func (a *Agent) Run(ctx context.Context) error {
	lab, err := a.Join(ctx)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrTokenRefused) {
			return nil
		}
		return err
	}
	if a.opts.Board == "" {
		a.opts.Board = lab
	}
	a.log.Info("lab joined the central server", "hub", a.client.Hub(), "lab", lab, "board", a.opts.Board, "labels", a.opts.Labels.String(), "concurrency", a.opts.Concurrency)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for range a.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.loop(ctx); err != nil {
				stop(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	a.log.Info("lab agent stopped")
	return nil
}

func (a *Agent) loop(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		lease, err := a.client.Poll(ctx, PollRequest{Board: a.opts.Board, Labels: a.opts.Labels, Agent: a.agent, Wait: a.opts.PollWait.String()})
		if err != nil {
			if r := a.refused(err); r != nil {
				return r
			}
			if ctx.Err() != nil {
				return nil
			}
			if IsStatus(err, http.StatusForbidden) || IsStatus(err, http.StatusBadRequest) {
				// The board is another lab's, or a label is wrong: nothing
				// changes by asking again.
				return fmt.Errorf("the central server %s refused this board: %w", a.client.Hub(), err)
			}
			failures++
			wait := min(time.Duration(failures)*time.Second, 30*time.Second)
			if failures == 1 || failures%10 == 0 {
				a.log.Error("cannot reach the central server; trying again", "hub", a.client.Hub(), "err", err, "retry_in", wait)
			}
			sleep(ctx, wait)
			continue
		}
		if failures > 0 {
			a.log.Info("the central server answers again", "hub", a.client.Hub())
			failures = 0
		}
		if lease == nil {
			continue
		}
		if err := a.work(ctx, lease); err != nil {
			return err
		}
	}
	return nil
}

// work runs one lease to its end: sent back, handed back, or lost.
func (a *Agent) work(ctx context.Context, l *Lease) error {
	req := l.Request
	log := a.log.With("request", req.ID, "task", req.TaskName, "item", req.Item, "attempt", l.Attempt)
	log.Info("request taken")
	runCtx, cancelRun := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRun(nil)
	var lost error
	var lostMu sync.Mutex
	hbDone := make(chan struct{})
	stopHB := make(chan struct{})
	go func() {
		defer close(hbDone)
		every := max(l.Heartbeat, 50*time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		failures := 0
		for {
			select {
			case <-stopHB:
				return
			case <-t.C:
			}
			hctx, cancel := context.WithTimeout(context.Background(), every*2)
			err := a.client.Heartbeat(hctx, l.ID, a.currentAction(req.ID))
			cancel()
			switch {
			case err == nil:
				failures = 0
			case IsStatus(err, http.StatusGone), IsStatus(err, http.StatusForbidden), IsStatus(err, http.StatusUnauthorized):
				lostMu.Lock()
				lost = err
				lostMu.Unlock()
				log.Error("lease lost (it expired, or the request was cancelled): the run is stopped and not sent", "err", err)
				cancelRun(err)
				return
			default:
				failures++
				if failures == 1 {
					log.Warn("heartbeat not taken; trying again", "hub", a.client.Hub(), "err", err)
				}
			}
		}
	}()
	defer func() {
		select {
		case <-stopHB:
		default:
			close(stopHB)
		}
		<-hbDone
	}()
	exec, err := a.run(runCtx, l)
	lostMu.Lock()
	gone := lost
	lostMu.Unlock()
	switch {
	case gone != nil:
		return a.refused(gone)
	case ctx.Err() != nil || err != nil:
		// The agent stops: the request goes to another lab now rather
		// than when the lease runs out.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.client.Release(rctx, l.ID); err != nil {
			log.Warn("lease not handed back; it will expire", "err", err)
		} else {
			log.Info("request handed back: the agent is stopping")
		}
		return nil
	}
	// Send the run; the heartbeat keeps the lease while it goes.
	for try := 1; ; try++ {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		ans, err := a.send(sctx, l, exec)
		cancel()
		if err == nil {
			log.Info("run sent", "state", ans.State, "outcome", ans.Outcome, "results", ans.Results)
			os.RemoveAll(filepath.Join(a.opts.Config.Runner.ArtifactsDir, req.ID))
			if a.opts.OnRun != nil {
				a.opts.OnRun(req, ans)
			}
			return nil
		}
		if r := a.refused(err); r != nil {
			return r
		}
		if IsStatus(err, http.StatusGone) || IsStatus(err, http.StatusForbidden) || IsStatus(err, http.StatusBadRequest) || IsStatus(err, http.StatusRequestEntityTooLarge) {
			log.Error("run refused by the central server", "err", err)
			return nil
		}
		wait := min(time.Duration(try)*time.Second, 30*time.Second)
		log.Warn("run not sent; trying again", "hub", a.client.Hub(), "err", err, "retry_in", wait)
		if !sleep(ctx, wait) && try > 3 {
			// Stopping: the lease will expire and the request run again.
			return nil
		}
	}
}

// send uploads the artifacts, then the execution.
func (a *Agent) send(ctx context.Context, l *Lease, exec contract.Execution) (RunAnswer, error) {
	if exec.Artifacts != "" && dirExists(exec.Artifacts) {
		if err := a.client.PutArtifacts(ctx, l.ID, exec.Artifacts, a.opts.MaxArtifacts); err != nil {
			return RunAnswer{}, fmt.Errorf("artifacts: %w", err)
		}
	}
	return a.client.PutRun(ctx, l.ID, exec)
}

// run fetches the task from the central server and runs it, its log
// shipped as it is written.
func (a *Agent) run(ctx context.Context, l *Lease) (contract.Execution, error) {
	req := l.Request
	arch := req.Arch
	if arch == "" {
		// The request runs on whatever this lab is.
		arch = a.opts.Labels["arch"]
	}
	if arch == "" {
		arch = "noarch"
	}
	in := contract.RunnerInput{Item: req.Item, ItemType: req.ItemType, UUID: req.ID, Arch: arch, TaskName: req.TaskName, JobID: req.ID}
	taskDir := filepath.Join(a.opts.Config.Runner.WorkDir, ".lab-tasks", req.ID)
	os.RemoveAll(taskDir)
	defer os.RemoveAll(taskDir)
	ship := a.logs.Ship(filepath.Join(a.opts.Config.Runner.ArtifactsDir, req.ID, runner.LogDir), req.ID, l.Attempt, a.log)
	defer func() {
		if !ship.Finish(30 * time.Second) {
			a.log.Warn("live log: the end of the log was not sent", "request", req.ID)
		}
	}()
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return a.broken(in, directives.Infra(fmt.Errorf("task folder: %w", err))), nil
	}
	commit, origin, err := a.client.Task(ctx, l.ID, taskDir)
	if err != nil {
		if ctx.Err() != nil {
			return contract.Execution{}, err
		}
		return a.broken(in, directives.Infra(fmt.Errorf("task %s from the central server: %w", req.TaskName, err))), nil
	}
	in.Formula = filepath.Join(taskDir, runner.FormulaFile)
	in.TaskOrigin = origin
	in.FormulaName = req.TaskName + "@" + shortCommit(commit) + "/" + runner.FormulaFile
	exec, err := a.runner.Run(ctx, in, nil)
	a.action(req.ID, "")
	a.mu.Lock()
	delete(a.actions, req.ID)
	a.mu.Unlock()
	return exec, err
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// broken is the execution of a run that could not start.
func (a *Agent) broken(in contract.RunnerInput, err error) contract.Execution {
	exec := contract.Execution{UUID: in.UUID, Item: in.Item, ItemType: in.ItemType, TaskName: in.TaskName, Arch: in.Arch}
	results.Broken(&exec, in.TaskName, "", contract.Aborted, err.Error())
	exec.Infra = directives.IsInfra(err)
	return exec
}
