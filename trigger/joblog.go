package trigger

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// JobLogPath is the job log of a configuration: trigger.job_log (default
// jobs.jsonl), relative to data_dir.
func JobLogPath(cfg config.Config) string { return cfg.Resolved().Trigger.JobLog }

// OpenJobLog opens JobLogPath(cfg) for appending (Relay's JobLog), making
// its folder when missing.
func OpenJobLog(cfg config.Config) (*os.File, error) {
	path := JobLogPath(cfg)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("job log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("job log: %w", err)
	}
	return f, nil
}

// ReadJobLog reads a JSON-lines job log (one job per line, as Relay writes
// it). name is used in error messages, which give the line.
func ReadJobLog(r io.Reader, name string) ([]contract.Job, error) {
	var jobs []contract.Job
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var j contract.Job
		if err := json.Unmarshal([]byte(text), &j); err != nil {
			return nil, fmt.Errorf("%s:%d: not a job: %v", name, line, err)
		}
		if j.Item == "" || j.ItemType == "" || j.TaskName == "" || j.Arch == "" {
			return nil, fmt.Errorf("%s:%d: a job needs item, item_type, taskname and arch", name, line)
		}
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return jobs, nil
}

// Resubmit prepares logged jobs for another run: a fresh uuid (the old run
// keeps its results), a fresh attempt count, and where it came from.
func Resubmit(jobs []contract.Job, now time.Time) []contract.Job {
	out := make([]contract.Job, len(jobs))
	for i, j := range jobs {
		extra := contract.Extra{}
		for k, v := range j.Extra {
			extra[k] = v
		}
		extra["replay_of"] = j.UUID
		j.Extra = extra
		j.UUID = newUUID()
		j.Attempt = 0
		j.Created = now.UTC()
		out[i] = j
	}
	return out
}
