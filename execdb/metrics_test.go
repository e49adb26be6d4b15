package execdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskotron-go/taskotron/contract"
)

// TestMetricsTimeTheQueueAndTheRun: a job that waited 30 s and ran 90 s
// shows in the histograms of its task, and in the counts by state.
func TestMetricsTimeTheQueueAndTheRun(t *testing.T) {
	s := openTestStore(t, "sqlite")
	m := NewMetrics(s)
	q := ev("q", "u", 0, contract.StateQueued, 0)
	q.TaskName = "rpmlint"
	run := ev("r", "u", 1, contract.StateRunning, 30*time.Second)
	done := ev("d", "u", 1, contract.StateFinished, 120*time.Second)
	if _, err := s.Apply(context.Background(), []contract.ExecutionEvent{q, run, done}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if n := testutil.CollectAndCount(m, "taskotron_execution_queue_wait_seconds"); n != 1 {
		t.Errorf("queue wait series: %d, want 1", n)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				got[f.GetName()] = h.GetSampleSum()
			} else if g := mt.GetGauge(); g != nil && len(mt.GetLabel()) == 1 {
				got[f.GetName()+"/"+mt.GetLabel()[0].GetValue()] = g.GetValue()
			}
		}
	}
	if got["taskotron_execution_queue_wait_seconds"] != 30 || got["taskotron_execution_run_seconds"] != 90 || got["taskotron_executions/finished"] != 1 {
		t.Errorf("metrics: %v", got)
	}
}
