package labs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// TestRouterSendsLabelledJobsToTheLabs: a job with labels becomes a
// request (once, however often it is published); one without goes to the
// workers' queue as before.
func TestRouterSendsLabelledJobsToTheLabs(t *testing.T) {
	th := startHub(t, time.Minute, "sqlite")
	q, err := bus.OpenDiskQueue(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	r := Router{Workers: q, Hub: th.client(t, "admin-secret")}
	now := time.Now().UTC()
	jobs := []contract.Job{
		{UUID: "job-plain", TaskName: "rpmlint", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Arch: "x86_64", Created: now},
		{UUID: "job-board", TaskName: "hello", Item: "xchat-0.5-1.fc20", ItemType: "koji_build", Created: now, Priority: 3,
			Labels: map[string]string{"board": "beaglebone-black"}, Rule: "rules.yml:4"},
	}
	ctx := context.Background()
	if err := r.Publish(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(ctx, jobs[1]); err != nil {
		t.Fatal(err)
	}
	d, err := r.Next(ctx)
	if err != nil || d.Job.UUID != "job-plain" {
		t.Fatalf("workers' queue gave %+v %v, want job-plain", d.Job, err)
	}
	d.Ack()
	req, err := th.store.Get(ctx, "job-board")
	if err != nil || req.Where["board"] != "beaglebone-black" || req.Priority != 3 || req.Rule != "rules.yml:4" || req.State != StateQueued {
		t.Fatalf("request %+v %v", req, err)
	}
	if l, _ := th.store.List(ctx, ListQuery{}); len(l) != 1 {
		t.Errorf("%d requests, want 1 (the job was published twice)", len(l))
	}
	if _, err := th.store.Get(ctx, "job-plain"); err == nil {
		t.Error("a job without labels became a request")
	}
}
