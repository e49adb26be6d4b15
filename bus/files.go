package bus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/taskotron-go/taskotron/capped"
	"github.com/taskotron-go/taskotron/contract"
)

// FileSource reads bus messages from files and folders: a .json file holds
// one message (or a JSON array of them), a .jsonl file one message a line,
// a folder every .json and .jsonl file in it by name, and "-" standard input
// (one JSON document, or JSON lines). It accepts the Fedora Messaging shape
// ({id, topic, headers, body}), the corpus shape (with fedmsg_envelope) and
// datagrepper's ({msg_id, topic, msg}).
type FileSource struct {
	// OnReject, when set, is called for every rejected message so it can be
	// set aside (a dead-letter file); it defaults to doing nothing.
	OnReject func(origin string, raw []byte, reason string) error

	stdin   io.Reader
	pending []string
	cur     *lineReader
}

// OpenFiles makes a source over the given paths; "-" reads stdin.
func OpenFiles(stdin io.Reader, paths ...string) (*FileSource, error) {
	s := &FileSource{stdin: stdin}
	for _, p := range paths {
		if p == "-" {
			s.pending = append(s.pending, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("message source %s: %w", p, err)
		}
		if !info.IsDir() {
			s.pending = append(s.pending, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("message folder %s: %w", p, err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".json") || strings.HasSuffix(e.Name(), ".jsonl")) {
				names = append(names, filepath.Join(p, e.Name()))
			}
		}
		sort.Strings(names)
		s.pending = append(s.pending, names...)
	}
	return s, nil
}

// Next returns the next message, or ErrDrained after the last one.
func (s *FileSource) Next(ctx context.Context) (Delivery, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Delivery{}, err
		}
		if s.cur != nil {
			raw, origin, err := s.cur.next()
			if err == io.EOF {
				s.cur.close()
				s.cur = nil
				continue
			}
			if err != nil {
				return Delivery{}, err
			}
			return s.delivery(raw, origin), nil
		}
		if len(s.pending) == 0 {
			return Delivery{}, ErrDrained
		}
		path := s.pending[0]
		s.pending = s.pending[1:]
		lr, err := openLines(path, s.stdin)
		if err != nil {
			return Delivery{}, err
		}
		s.cur = lr
	}
}

func (s *FileSource) delivery(raw []byte, origin string) Delivery {
	reject := func(reason string) error {
		if s.OnReject == nil {
			return nil
		}
		return s.OnReject(origin, raw, reason)
	}
	msg, err := DecodeMessage(raw)
	d := NewDelivery(msg, raw, origin, nil, reject)
	if err != nil {
		d.Err = fmt.Errorf("%s: %w", origin, err)
	}
	return d
}

// lineReader yields the JSON documents of one file with their origin.
type lineReader struct {
	name  string
	docs  [][]byte // whole-file mode: the documents, already split
	lines *bufio.Scanner
	line  int
	f     *os.File
}

// MaxInput caps what is read whole from one file or from standard input:
// a message file, a message for explain, task output or an execution for
// report. It is the cap a formula's results file has: task output the
// runner would not read is no input either. Real ones are kilobytes (an
// action's output is capped at runner.max_output, 10 MiB); a long archive
// of messages streams as .jsonl, a line at a time. The cap keeps /dev/zero
// or a runaway pipe from taking all memory.
const MaxInput = 64 << 20

// ErrTooLarge is the error of an input over MaxInput.
var ErrTooLarge = fmt.Errorf("larger than %d MiB, the most read from one file or standard input", MaxInput>>20)

// ReadAllCapped reads r to its end, or fails with ErrTooLarge past
// MaxInput bytes without reading further. Errors do not name the input:
// the caller does.
func ReadAllCapped(r io.Reader) ([]byte, error) {
	data, err := capped.ReadAll(r, MaxInput)
	if errors.Is(err, capped.ErrTooLarge) {
		return nil, ErrTooLarge
	}
	return data, err
}

func openLines(path string, stdin io.Reader) (*lineReader, error) {
	if path == "-" {
		all, err := ReadAllCapped(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading messages from stdin: %w", err)
		}
		return splitDocs("stdin", all), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("message file: %w", err)
	}
	if strings.HasSuffix(path, ".jsonl") {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		return &lineReader{name: path, lines: sc, f: f}, nil
	}
	all, err := ReadAllCapped(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("message file %s: %w", path, err)
	}
	return splitDocs(path, all), nil
}

// splitDocs treats input as one JSON document (an object or an array of
// objects) when it parses as one, and as JSON lines otherwise.
func splitDocs(name string, all []byte) *lineReader {
	trimmed := bytes.TrimSpace(all)
	if json.Valid(trimmed) {
		if len(trimmed) > 0 && trimmed[0] == '[' {
			var items []json.RawMessage
			if json.Unmarshal(trimmed, &items) == nil {
				docs := make([][]byte, len(items))
				for i, it := range items {
					docs[i] = it
				}
				return &lineReader{name: name, docs: docs}
			}
		}
		return &lineReader{name: name, docs: [][]byte{trimmed}}
	}
	sc := bufio.NewScanner(bytes.NewReader(all))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &lineReader{name: name, lines: sc}
}

func (r *lineReader) next() ([]byte, string, error) {
	if r.lines == nil {
		if len(r.docs) == 0 {
			return nil, "", io.EOF
		}
		doc := r.docs[0]
		r.docs = r.docs[1:]
		r.line++
		origin := r.name
		if r.line > 1 || len(r.docs) > 0 {
			origin = fmt.Sprintf("%s[%d]", r.name, r.line-1)
		}
		return doc, origin, nil
	}
	for r.lines.Scan() {
		r.line++
		text := bytes.TrimSpace(r.lines.Bytes())
		if len(text) == 0 {
			continue
		}
		return append([]byte(nil), text...), fmt.Sprintf("%s:%d", r.name, r.line), nil
	}
	if err := r.lines.Err(); err != nil {
		return nil, "", fmt.Errorf("%s:%d: %w", r.name, r.line+1, err)
	}
	return nil, "", io.EOF
}

func (r *lineReader) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// DecodeMessage reads one bus message in any of the accepted shapes. A
// message without an id gets one derived from its content, so that reading
// the same file twice yields the same id (and dedup can see it).
func DecodeMessage(raw []byte) (contract.Message, error) {
	var msg contract.Message
	if err := json.Unmarshal(raw, &msg); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) || !json.Valid(raw) {
			return contract.Message{}, fmt.Errorf("not a JSON object: %s", oneLine(err))
		}
		return contract.Message{}, fmt.Errorf("malformed message: %s", oneLine(err))
	}
	if msg.Body == nil {
		if legacy, ok := msg.Extra["msg"].(map[string]any); ok {
			msg.Body = legacy
			delete(msg.Extra, "msg")
		}
	}
	if msg.ID == "" {
		msg.ID = stringField(msg.Extra, "msg_id")
	}
	if msg.ID == "" {
		if env, ok := msg.Extra["fedmsg_envelope"].(map[string]any); ok {
			msg.ID = stringField(env, "msg_id")
		}
	}
	if msg.Topic == "" {
		return msg, fmt.Errorf("message has no topic")
	}
	if msg.Body == nil {
		return msg, fmt.Errorf("message %q has no body object", msg.Topic)
	}
	if msg.ID == "" {
		msg.ID = derivedID(msg)
	}
	return msg, nil
}

func stringField(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// derivedID makes a UUID-shaped id from the topic and body.
func derivedID(msg contract.Message) string {
	body, _ := json.Marshal(msg.Body) // map keys are sorted: stable
	sum := sha256.Sum256(append([]byte(msg.Topic+"\n"), body...))
	sum[6] = sum[6]&0x0f | 0x50 // version 5 style
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
