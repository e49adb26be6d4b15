package trigger

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/status"
)

// downQueue fails every publish while down is set, as a broker that is away.
type downQueue struct {
	down      atomic.Bool
	published atomic.Int64
}

func (q *downQueue) Publish(_ context.Context, jobs ...contract.Job) error {
	if q.down.Load() {
		return errors.New("dial tcp 127.0.0.1:5672: connect: connection refused")
	}
	q.published.Add(int64(len(jobs)))
	return nil
}

func (q *downQueue) Next(ctx context.Context) (bus.JobDelivery, error) {
	<-ctx.Done()
	return bus.JobDelivery{}, ctx.Err()
}

// TestServiceHealthSaysWhenJobsCannotBePublished: the trigger role's
// /healthz says 503 once publishing jobs has failed for longer than the
// grace, and ok again when the queue takes them.
func TestServiceHealthSaysWhenJobsCannotBePublished(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	q := &downQueue{}
	q.down.Store(true)
	svc, err := NewService(t.Context(), cfg, nil, ServiceOptions{
		Messages: []string{filepath.Join(corpusDir, "koji-build-state-change__11.json")}, NoDedup: true,
		Queue: q, StatusGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := status.New("trigger")
	svc.AddStatus(srv)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := srv.Health()
		if err != nil && strings.Contains(err.Error(), "publishing jobs fails since") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health after publishing failed for 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	q.down.Store(false)
	for deadline := time.Now().Add(15 * time.Second); srv.Health() != nil || q.published.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("health once the queue is back: %v (jobs published %d)", srv.Health(), q.published.Load())
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
