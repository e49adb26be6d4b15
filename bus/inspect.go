package bus

import (
	"bufio"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/redact"
)

// Kinds of queues an inspection reports.
const (
	KindJobs       = "jobs"       // <job_queue>.<arch>
	KindHostJobs   = "host-jobs"  // <job_queue>.<arch>.host (match_host_arch)
	KindSource     = "source"     // the trigger's bus queue
	KindDeadLetter = "deadletter" // malformed messages set aside
)

// QueueDepth is what one AMQP queue holds, as a passive declare tells it:
// messages ready for delivery and consumers attached. Messages delivered
// but not acked yet are not visible over AMQP 0-9-1 (RabbitMQ's management
// API has them), so there is no unacked count here.
type QueueDepth struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Arch      string `json:"arch,omitempty"`
	Exists    bool   `json:"exists"`
	Ready     int    `json:"ready"`
	Consumers int    `json:"consumers"`
}

// BrokerQueues lists the AMQP queues of a configuration: the job queue of
// each arch (and its .host twin), the trigger's queue and its dead-letter
// queue. arches are the job queues' arches; none means trigger.arches and
// noarch.
func BrokerQueues(cfg config.Config, arches ...string) []QueueDepth {
	if len(arches) == 0 {
		arches = append(append([]string{}, cfg.Trigger.Arches...), "noarch")
	}
	var qs []QueueDepth
	seen := map[string]bool{}
	for _, a := range arches {
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		qs = append(qs, QueueDepth{Name: cfg.AMQP.JobQueue + "." + a, Kind: KindJobs, Arch: a})
		if a != "noarch" { // noarch jobs never go to a .host queue
			qs = append(qs, QueueDepth{Name: cfg.AMQP.JobQueue + "." + a + hostSuffix, Kind: KindHostJobs, Arch: a})
		}
	}
	dlq := cfg.AMQP.DeadLetterQueue
	if dlq == "" {
		dlq = cfg.AMQP.Queue + ".deadletter"
	}
	return append(qs,
		QueueDepth{Name: cfg.AMQP.Queue, Kind: KindSource},
		QueueDepth{Name: dlq, Kind: KindDeadLetter})
}

// InspectBroker fills in the depth of each queue with one connection and a
// passive declare per queue, which creates nothing: a queue that does not
// exist yet comes back with Exists false. A broker that cannot be reached
// is an error naming the URL without its password.
func InspectBroker(url string, queues []QueueDepth) ([]QueueDepth, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Heartbeat: 10 * time.Second, Locale: "en_US"})
	if err != nil {
		return nil, fmt.Errorf("amqp %s: %w", RedactURL(url), redact.URLError(err, url))
	}
	defer conn.Close()
	out := append([]QueueDepth(nil), queues...)
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			ch.Close()
		}
	}()
	for i := range out {
		if ch == nil || ch.IsClosed() {
			// A passive declare of a missing queue closes the channel.
			if ch, err = conn.Channel(); err != nil {
				return nil, fmt.Errorf("amqp %s: channel: %w", RedactURL(url), redact.URLError(err, url))
			}
		}
		q, err := ch.QueueDeclarePassive(out[i].Name, true, false, false, false, nil)
		var aerr *amqp.Error
		switch {
		case err == nil:
			out[i].Exists, out[i].Ready, out[i].Consumers = true, q.Messages, q.Consumers
		case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
			out[i].Exists = false
		default:
			return nil, fmt.Errorf("amqp %s: queue %s: %w", RedactURL(url), out[i].Name, redact.URLError(err, url))
		}
	}
	return out, nil
}

// DiskQueueState is what the on-disk job queue folder holds. The folder
// does not say which jobs a worker holds right now; a job file whose
// attempt count is above zero has been handed to a worker at least once:
// it runs, or it came back after a crash or a hand-back.
type DiskQueueState struct {
	Dir    string `json:"dir"`
	Exists bool   `json:"exists"`
	// Waiting were never taken; Taken were handed out at least once and
	// are not acked yet.
	Waiting int `json:"waiting"`
	Taken   int `json:"taken"`
	// Unreadable files were set aside in unreadable/.
	Unreadable int `json:"unreadable"`
	// ByArchTask counts jobs by "arch/task".
	ByArchTask map[string]int `json:"by_arch_task,omitempty"`
}

// InspectDiskQueue reads the on-disk job queue folder without changing it.
func InspectDiskQueue(dir string) (DiskQueueState, error) {
	st := DiskQueueState{Dir: dir, ByArchTask: map[string]int{}}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("job queue folder %s: %w", dir, err)
	}
	st.Exists = true
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		seqText, _, _ := strings.Cut(name, "-")
		if _, err := strconv.ParseUint(seqText, 10, 64); err != nil {
			continue // not one of ours
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // acked meanwhile
		}
		var job contract.Job
		if err == nil {
			err = json.Unmarshal(raw, &job)
		}
		if err != nil {
			st.Unreadable++
			continue
		}
		if job.Attempt > 0 {
			st.Taken++
		} else {
			st.Waiting++
		}
		st.ByArchTask[job.Arch+"/"+job.TaskName]++
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "unreadable")); err == nil {
		st.Unreadable += len(ents)
	}
	return st, nil
}

// CountDeadLetters counts the lines of a dead-letter file (0 when it does
// not exist).
func CountDeadLetters(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("dead-letter file: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) > 0 {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("dead-letter file %s: %w", path, err)
	}
	return n, nil
}

// SortedKeys returns a count map's keys in order, for stable output.
func SortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AMQPCounters reads the process's AMQP transport counters (the expvar map
// taskotron_amqp): source_delivered, source_dead_lettered,
// source_reconnects, source_stalls, jobs_published and the rest.
func AMQPCounters() map[string]int64 {
	out := map[string]int64{}
	amqpMetrics.Do(func(kv expvar.KeyValue) {
		if v, ok := kv.Value.(*expvar.Int); ok {
			out[kv.Key] = v.Value()
		}
	})
	return out
}

// Connected says whether the source has a live broker connection now; it
// is false while it reconnects.
func (s *AMQPSource) Connected() bool {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	return cur != nil && !cur.conn.IsClosed()
}

// QueueName is the trigger's queue.
func (s *AMQPSource) QueueName() string { return s.cfg.Queue }

// Connected says whether the job queue has a live broker connection now.
// It reconnects on the next call after a loss, so false means the last
// attempt failed or nothing tried yet.
func (q *AMQPJobQueue) Connected() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.conn != nil && !q.conn.IsClosed()
}
