package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/taskotron-go/taskotron/config"
)

// DeadLetter is one line of a dead-letter file.
type DeadLetter struct {
	Time   string `json:"time"`
	Origin string `json:"origin"`
	Reason string `json:"reason"`
	// Message is the message as read when it is JSON; Raw holds it otherwise.
	Message json.RawMessage `json:"message,omitempty"`
	Raw     string          `json:"raw,omitempty"`
}

// DeadLetterFile returns a FileSource.OnReject that appends each rejected
// message with its reason and origin to the JSON-lines file at path, and
// syncs it before returning: the message is acked (read past) only once it
// is kept. Safe for concurrent use.
func DeadLetterFile(path string) func(origin string, raw []byte, reason string) error {
	var mu sync.Mutex
	return func(origin string, raw []byte, reason string) error {
		entry := DeadLetter{Time: time.Now().UTC().Format(time.RFC3339Nano), Origin: origin, Reason: reason}
		if json.Valid(raw) {
			entry.Message = json.RawMessage(raw)
		} else {
			entry.Raw = string(raw)
		}
		line, err := json.Marshal(entry)
		if err != nil {
			return fmt.Errorf("dead-letter file %s: %w", path, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("dead-letter file %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("dead-letter file: %w", err)
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			f.Close()
			return fmt.Errorf("dead-letter file %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("dead-letter file %s: %w", path, err)
		}
		return f.Close()
	}
}

// OpenSource opens where the trigger reads bus messages from: RabbitMQ
// (amqp.* settings) when amqp.url is set and no paths are given, else the
// files, folders or "-" (stdin) in paths (default trigger.messages), with
// rejected messages set aside in cfg.DeadLetterFile(). close releases the
// source (the connection; nothing for files).
func OpenSource(ctx context.Context, cfg config.Config, stdin io.Reader, paths []string, log *slog.Logger) (src Source, close func() error, err error) {
	if len(paths) == 0 && cfg.AMQP.URL != "" {
		s, err := OpenAMQPSource(ctx, AMQPSourceConfig{
			URL: cfg.AMQP.URL, Exchange: cfg.AMQP.Exchange, Queue: cfg.AMQP.Queue, Topics: cfg.AMQP.Topics,
			Prefetch: cfg.AMQP.Prefetch, DeadLetterQueue: cfg.AMQP.DeadLetterQueue, Watchdog: cfg.AMQP.Watchdog, Log: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	if len(paths) == 0 {
		paths = []string{cfg.Trigger.Messages}
	}
	fs, err := OpenFiles(stdin, paths...)
	if err != nil {
		return nil, nil, err
	}
	fs.OnReject = DeadLetterFile(cfg.DeadLetterFile())
	return fs, func() error { return nil }, nil
}

// Consumer says how a worker takes jobs from a queue OpenJobQueue opens;
// the trigger, which only publishes, leaves it zero.
type Consumer struct {
	// Arches are the job queues Next takes from (RabbitMQ only); none means
	// trigger.arches and noarch, as a worker's default.
	Arches []string
	// Prefetch and Running: see AMQPJobQueueConfig.
	Prefetch, Running int
}

// OpenJobQueue opens where jobs wait for a runner: RabbitMQ (amqp.url,
// amqp.job_exchange, amqp.job_queue) when amqp.url is set, else the on-disk
// queue in cfg.QueueDir(). close releases the connection.
func OpenJobQueue(ctx context.Context, cfg config.Config, log *slog.Logger, c Consumer) (q JobQueue, close func() error, err error) {
	if cfg.AMQP.URL != "" {
		arches := c.Arches
		if len(arches) == 0 {
			arches = append(append([]string{}, cfg.Trigger.Arches...), "noarch")
		}
		aq, err := OpenAMQPJobQueue(ctx, AMQPJobQueueConfig{
			URL: cfg.AMQP.URL, Exchange: cfg.AMQP.JobExchange, Queue: cfg.AMQP.JobQueue, Arches: arches,
			Prefetch: c.Prefetch, Running: c.Running, Log: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return aq, aq.Close, nil
	}
	dq, err := OpenDiskQueue(cfg.QueueDir())
	if err != nil {
		return nil, nil, err
	}
	return dq, func() error { return nil }, nil
}
