package execdb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Shipper follows the log files of one attempt (a runner's log folder) and
// sends what they gain to the central server as they grow, in order; after a
// dropped connection or a server restart it resumes from what the server
// holds. Files are opened without following links: a task that plants one
// in the folder does not get a worker's file sent to the server.
type Shipper struct {
	c       *Client
	dir     string
	uuid    string
	attempt int
	log     *slog.Logger

	sent   map[string]int64
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	Period time.Duration
}

// shipChunk bounds one append.
const shipChunk = 1 << 20

// Ship starts following dir for the given attempt.
func (c *Client) Ship(dir, uuid string, attempt int, log *slog.Logger) *Shipper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Shipper{c: c, dir: dir, uuid: uuid, attempt: attempt, log: log, sent: map[string]int64{},
		stop: make(chan struct{}), done: make(chan struct{}), Period: 250 * time.Millisecond}
	go s.run()
	return s
}

// Finish sends what is left and waits for it, at most for within (a server
// away longer keeps the tail of the log); it returns whether all was sent.
func (s *Shipper) Finish(within time.Duration) bool {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (s *Shipper) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failures := 0
	for {
		stopping := false
		select {
		case <-s.stop:
			stopping = true
		default:
		}
		more, err := s.pass(ctx)
		if stopping && err == nil && !more {
			// All sent: the logs are whole, followers may stop.
			err = s.c.CloseLogs(ctx, s.uuid, s.attempt)
			if Final(err) {
				s.log.Warn("live log: the executions server did not take the end of the log", "uuid", s.uuid, "err", err)
				return
			}
		}
		if err != nil {
			failures++
			if failures == 1 {
				s.log.Warn("live log: the executions server did not take the log; trying again", "uuid", s.uuid, "err", err)
			}
		} else {
			failures = 0
		}
		if stopping && err == nil && !more {
			return
		}
		wait := s.Period
		if failures > 0 {
			wait = min(time.Duration(failures)*500*time.Millisecond, 5*time.Second)
		} else if more {
			continue
		}
		select {
		case <-s.stop:
			if !stopping {
				continue
			}
			time.Sleep(wait)
		case <-time.After(wait):
		}
	}
}

// pass sends one chunk of each file that grew; more says some file has
// more to send.
func (s *Shipper) pass(ctx context.Context) (more bool, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !logNameRe.MatchString(name) || !shipped(name) {
			continue
		}
		data, size, err := s.read(name)
		if err != nil || len(data) == 0 {
			continue
		}
		n, err := s.c.AppendLog(ctx, s.uuid, s.attempt, name, s.sent[name], data)
		var oe *OffsetError
		switch {
		case errors.As(err, &oe):
			// The server holds more (an earlier try went through) or less
			// (it lost what it had not committed): go on from its end.
			s.sent[name] = min(oe.Size, size)
			more = true
		case err != nil:
			return more, err
		default:
			s.sent[name] = n
			if n < size {
				more = true
			}
		}
	}
	return more, nil
}

// shipped tells the files a run's log folder holds that are logs: the
// runner's and each action's output.
func shipped(name string) bool {
	switch filepath.Ext(name) {
	case ".log", ".stdout", ".stderr":
		return true
	}
	return false
}

// read reads the next chunk of a file from what was sent, and its size.
func (s *Shipper) read(name string) ([]byte, int64, error) {
	fd, err := syscall.Open(filepath.Join(s.dir, name), syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, 0, errors.New("not a regular file")
	}
	from := s.sent[name]
	if fi.Size() <= from {
		return nil, fi.Size(), nil
	}
	buf := make([]byte, min(fi.Size()-from, shipChunk))
	n, err := f.ReadAt(buf, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return buf[:n], fi.Size(), nil
}
