package labs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// Router is a job queue for the trigger: the jobs a rule's where: gave
// labels become requests on the central server's queue for the labs; the
// others go to the workers' queue, unchanged. A job put twice (the trigger
// resends after a crash) is queued once: its uuid is the request's id.
type Router struct {
	Workers bus.JobQueue
	Hub     *Client
}

// Publish routes the jobs.
func (r Router) Publish(ctx context.Context, jobs ...contract.Job) error {
	var plain []contract.Job
	var reqs []NewRequest
	for _, j := range jobs {
		if len(j.Labels) == 0 {
			plain = append(plain, j)
			continue
		}
		reqs = append(reqs, FromJob(j))
	}
	for start := 0; start < len(reqs); start += maxPut {
		if _, err := r.Hub.Put(ctx, reqs[start:min(start+maxPut, len(reqs))]...); err != nil {
			return fmt.Errorf("requests for the labs: %w", err)
		}
	}
	if len(plain) == 0 {
		return nil
	}
	return r.Workers.Publish(ctx, plain...)
}

// Next takes the workers' next job.
func (r Router) Next(ctx context.Context) (bus.JobDelivery, error) { return r.Workers.Next(ctx) }

// Routing is the trigger's job queue wrapper for the configuration: jobs
// with labels go to the central server (labs.hub, else execdb.url) as
// requests. nil when no central server is configured: labelled jobs then
// go to the workers with the others, which cannot honour their labels.
func Routing(cfg config.Config, log *slog.Logger) (func(bus.JobQueue) bus.JobQueue, error) {
	hub := cfg.Labs.Hub
	if hub == "" {
		hub = cfg.ExecDB.URL
	}
	if hub == "" {
		return nil, nil
	}
	c, err := NewClient(hub, cfg.ExecDB.Token, log)
	if err != nil {
		return nil, fmt.Errorf("labs.hub: %w", err)
	}
	return func(q bus.JobQueue) bus.JobQueue { return Router{Workers: q, Hub: c} }, nil
}
