package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// drainQueue takes every job from a disk queue (acking them).
func drainQueue(t *testing.T, q *bus.DiskQueue) []contract.Job {
	t.Helper()
	q.Seal()
	var jobs []contract.Job
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		d, err := q.Next(ctx)
		cancel()
		if err == bus.ErrDrained {
			return jobs
		}
		if err != nil {
			t.Fatalf("job queue: %v", err)
		}
		jobs = append(jobs, d.Job)
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func corpusLine(t *testing.T, name, id string) string {
	m := loadCorpus(t, name)
	m.ID = id
	m.Extra = nil
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestRelayFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "messages.jsonl")
	writeFile(t, in,
		corpusLine(t, "koji-build-state-change__10.json", "m-build"),
		`{"topic": "org.fedoraproject.prod.buildsys.tag", "body": `, // not JSON
		corpusLine(t, "koji-untag__1.json", "m-untag"),
		`{"id": "m-bad", "topic": "org.fedoraproject.prod.buildsys.build.state.change", "body": {"new": 1, "name": "x"}}`,
		corpusLine(t, "koji-tag__3.json", "m-tag"),
		corpusLine(t, "koji-build-state-change__10.json", "m-build"),  // redelivered
		corpusLine(t, "koji-build-state-change__8.json", "m-build-2"), // same NVR, another message
	)
	src, err := bus.OpenFiles(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		rejected []string
	)
	src.OnReject = func(origin string, raw []byte, reason string) error {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, origin+" "+reason)
		return nil
	}
	q, err := bus.OpenDiskQueue(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenDedup(t.Context(), "sqlite:"+filepath.Join(dir, "state.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var jobLog bytes.Buffer
	tr := New(Options{Dedup: store})
	st, err := Relay(t.Context(), src, tr, q, nil, &jobLog)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 7 || st.Ignored != 1 || st.Rejected != 2 || st.Jobs != 4 || st.Duplicates != 3 {
		t.Errorf("stats: %+v", st)
	}
	sort.Strings(rejected)
	if len(rejected) != 2 || !strings.Contains(rejected[0], "messages.jsonl:2") || !strings.Contains(rejected[1], `missing field "version"`) {
		t.Errorf("rejected: %q", rejected)
	}
	jobs := drainQueue(t, q)
	if got := jobSet(jobs); got != "nvr-format/x86_64 python-versions/noarch rpmlint/x86_64 upgradepath/noarch" {
		t.Errorf("queued jobs: %q", got)
	}
	logged, err := ReadJobLog(&jobLog, "job log")
	if err != nil || jobSet(logged) != jobSet(jobs) {
		t.Errorf("job log: %v %v", jobSet(logged), err)
	}
	// Of the three deliveries of one build, whichever came first made the
	// jobs; the others made none.
	withJobs := 0
	for _, o := range st.PerMessage {
		if strings.HasPrefix(o.MsgID, "m-build") && len(o.Jobs) > 0 {
			withJobs++
			if len(o.Jobs) != 3 {
				t.Errorf("build message made %d jobs", len(o.Jobs))
			}
		}
	}
	if withJobs != 1 {
		t.Errorf("per message: %+v", st.PerMessage)
	}

	// A restart with the same state: the same messages make no new jobs.
	src, _ = bus.OpenFiles(nil, in)
	q2, _ := bus.OpenDiskQueue(filepath.Join(dir, "queue2"))
	st, err = Relay(t.Context(), src, New(Options{Dedup: store}), q2, nil, nil)
	if err != nil || st.Jobs != 0 {
		t.Errorf("after restart: %+v %v", st, err)
	}
}

// A burst of tag events for one tag within the fuse delay makes one job per
// task and arch; a later burst makes another. Messages come through a FIFO,
// so the relay sees them over time as it would from a bus.
func TestRelayFuseDelay(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stream.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := bus.OpenDiskQueue(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 400 * time.Millisecond
	tr := New(Options{FuseDelay: delay, Arches: []string{"x86_64"}})
	done := make(chan Stats, 1)
	go func() {
		src, err := bus.OpenFiles(nil, fifo)
		if err != nil {
			t.Error(err)
			done <- Stats{}
			return
		}
		st, err := Relay(context.Background(), src, tr, q, nil, nil)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(i int, tagName string) string {
		b, _ := json.Marshal(contract.Message{ID: "tag-" + tagName + "-" + string(rune('a'+i)), Topic: "org.fedoraproject.prod.buildsys.tag",
			Body: map[string]any{"tag": tagName, "name": "pkg" + string(rune('a'+i)), "version": "1", "release": "1.fc40", "instance": "primary"}})
		return string(b) + "\n"
	}
	for i := range 10 {
		w.WriteString(tag(i, "f40-updates-pending"))
	}
	w.WriteString(tag(0, "f39-updates-pending"))
	pendingWithin := func(want int, within time.Duration) int {
		deadline := time.Now().Add(within)
		for {
			n, _ := q.Len()
			if n >= want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n, _ := q.Len(); n != 0 {
		t.Errorf("jobs queued before the fuse delay: %d", n)
	}
	if n := pendingWithin(2, 5*delay); n != 2 {
		t.Fatalf("after the delay: %d jobs, want 2 (one per tag)", n)
	}
	for i := 10; i < 15; i++ {
		w.WriteString(tag(i, "f40-updates-pending"))
	}
	if n := pendingWithin(3, 5*delay); n != 3 {
		t.Fatalf("after a second burst: %d jobs, want 3", n)
	}
	w.Close()
	st := <-done
	if st.Messages != 16 || st.Jobs != 3 {
		t.Errorf("stats: %+v", st)
	}
	fused := 0
	for _, o := range st.PerMessage {
		if o.Outcome == OutcomeFused {
			fused++
		}
	}
	if fused != 13 {
		t.Errorf("fused messages: %d, want 13", fused)
	}
	if got := jobSet(drainQueue(t, q)); got != "upgradepath/noarch upgradepath/noarch upgradepath/noarch" {
		t.Errorf("jobs: %s", got)
	}
}

// Relay serves many messages concurrently and every one is accounted for.
func TestRelayConcurrentAccounting(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 200 {
		b, _ := json.Marshal(contract.Message{ID: "m" + string(rune(0x4e00+i)), Topic: "org.fedoraproject.prod.buildsys.build.state.change",
			Body: map[string]any{"new": 1, "name": "pkg", "version": "1", "release": string(rune('a'+i%26)) + ".fc40", "instance": "primary"}})
		lines = append(lines, string(b))
	}
	in := filepath.Join(dir, "m.jsonl")
	writeFile(t, in, lines...)
	src, _ := bus.OpenFiles(nil, in)
	q, _ := bus.OpenDiskQueue(filepath.Join(dir, "queue"))
	var mu sync.Mutex
	seen := map[string]int{}
	st, err := RelayWith(t.Context(), src, New(Options{}), q, RelayOptions{Workers: 16, OnOutcome: func(o MessageOutcome) {
		mu.Lock()
		seen[o.MsgID]++
		mu.Unlock()
	}})
	if err != nil || st.Messages != 200 || st.Jobs != 600 || len(seen) != 200 {
		t.Fatalf("stats %+v, outcomes for %d messages, err %v", st.Messages, len(seen), err)
	}
}

// The production dedup state: PostgreSQL, shared by trigger processes. A
// second trigger over the same messages makes no jobs.
func TestRelayDedupPostgres(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.jsonl")
	writeFile(t, in, corpusLine(t, "koji-build-state-change__10.json", "pg-1"), corpusLine(t, "koji-tag__3.json", "pg-2"))
	dsn := postgresDSN(t)
	for run, want := range []int{4, 0} {
		store, err := OpenDedup(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		src, _ := bus.OpenFiles(nil, in)
		q, _ := bus.OpenDiskQueue(filepath.Join(dir, fmt.Sprint("queue", run)))
		st, err := Relay(t.Context(), src, New(Options{Dedup: store}), q, nil, nil)
		store.Close()
		if err != nil || st.Jobs != want || len(drainQueue(t, q)) != want {
			t.Fatalf("run %d: %+v %v, want %d jobs", run, st, err, want)
		}
	}
}

// When the dedup state cannot be reached, a message is retried for a while
// and then set aside with the reason, never acked without its jobs.
func TestRelayTransientFailure(t *testing.T) {
	old := TransientPatience
	TransientPatience = 800 * time.Millisecond
	defer func() { TransientPatience = old }()
	dir := t.TempDir()
	in := filepath.Join(dir, "m.jsonl")
	writeFile(t, in, corpusLine(t, "koji-tag__3.json", "tr-1"))
	store, err := OpenDedup(t.Context(), "sqlite:"+filepath.Join(dir, "state.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	store.Close() // the state is gone
	src, _ := bus.OpenFiles(nil, in)
	var reason string
	src.OnReject = func(_ string, _ []byte, why string) error { reason = why; return nil }
	q, _ := bus.OpenDiskQueue(filepath.Join(dir, "queue"))
	start := time.Now()
	st, err := Relay(t.Context(), src, New(Options{Dedup: store}), q, nil, nil)
	if err != nil || st.Rejected != 1 || st.Jobs != 0 || !strings.Contains(reason, "dedup store") {
		t.Fatalf("stats %+v, reason %q, err %v", st, reason, err)
	}
	if time.Since(start) < TransientPatience {
		t.Errorf("set aside after %v, before retrying for %v", time.Since(start), TransientPatience)
	}
}

// chanSource hands out the messages sent on it and records which were acked.
type chanSource struct {
	in    chan contract.Message
	mu    sync.Mutex
	acked map[string]bool
}

func (s *chanSource) Next(ctx context.Context) (bus.Delivery, error) {
	select {
	case m, ok := <-s.in:
		if !ok {
			return bus.Delivery{}, bus.ErrDrained
		}
		ack := func() error {
			s.mu.Lock()
			s.acked[m.ID] = true
			s.mu.Unlock()
			return nil
		}
		return bus.NewDelivery(m, nil, "chan", ack, func(string) error { return nil }), nil
	case <-ctx.Done():
		return bus.Delivery{}, ctx.Err()
	}
}

func (s *chanSource) isAcked(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked[id]
}

// While a burst of tag events waits out the fuse delay, only the event that
// opened the group stays unacked: the others would hold the broker's few
// unacked messages (prefetch) and stall every other message.
func TestRelayFuseHoldsOnlyTheFirstEvent(t *testing.T) {
	q, err := bus.OpenDiskQueue(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 500 * time.Millisecond
	src := &chanSource{in: make(chan contract.Message), acked: map[string]bool{}}
	tr := New(Options{FuseDelay: delay, Arches: []string{"x86_64"}})
	done := make(chan Stats, 1)
	go func() {
		st, _ := Relay(t.Context(), src, tr, q, nil, nil)
		done <- st
	}()
	for i := range 5 {
		src.in <- contract.Message{ID: fmt.Sprintf("tag-%d", i), Topic: "org.fedoraproject.prod.buildsys.tag",
			Body: map[string]any{"tag": "f40-updates-pending", "name": fmt.Sprintf("pkg%d", i), "version": "1", "release": "1.fc40", "instance": "primary"}}
	}
	// Workers handle them in any order: whichever came first holds the group.
	unacked := func() []string {
		var ids []string
		for i := range 5 {
			if id := fmt.Sprintf("tag-%d", i); !src.isAcked(id) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for deadline := time.Now().Add(delay / 2); len(unacked()) > 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	held := unacked()
	if len(held) != 1 {
		t.Fatalf("held during the fuse delay: %v, want only the event that opened the group", held)
	}
	if n, _ := q.Len(); n != 0 {
		t.Fatalf("%d jobs queued before the fuse delay", n)
	}
	for deadline := time.Now().Add(10 * delay); !src.isAcked(held[0]); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not acked after the fuse delay", held[0])
		}
	}
	if n, _ := q.Len(); n != 1 {
		t.Fatalf("%d jobs after the fuse delay, want 1", n)
	}
	close(src.in)
	st := <-done
	if st.Messages != 5 || st.Jobs != 1 {
		t.Errorf("stats: %+v", st)
	}
}
