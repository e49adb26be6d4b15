package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/taskotron-go/taskotron/contract"
)

// Each calls fn with each of the execution's results in order, from
// exec.Results or, for an execution whose results are in a file
// (exec.ResultsFile, and their details in exec.DetailsFile, relative to
// exec.Artifacts), read from it a few at a time (see pipeline): constant
// memory however many there are. It stops at fn's first error and returns
// it.
func Each(exec contract.Execution, fn func(contract.Result) error) error {
	return each(exec, true, fn)
}

// EachWithoutDetails is Each that leaves out the results' details, which
// no ResultsDB post carries: they are most of a results file's bytes, so
// a results file keeps them apart (exec.DetailsFile), unread here.
func EachWithoutDetails(exec contract.Execution, fn func(contract.Result) error) error {
	return each(exec, false, fn)
}

func each(exec contract.Execution, withDetails bool, fn func(contract.Result) error) error {
	if exec.ResultsFile == "" {
		for _, r := range exec.Results {
			if !withDetails {
				r.Details = nil
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	readErr, fnErr := pipeline(func(send func(contract.Result, int) error) error {
		return readResultsFile(exec, withDetails, send)
	}, fn)
	if fnErr != nil {
		return fnErr
	}
	return readErr
}

// readResultsFile reads the execution's results file (and its details
// file, withDetails) and sends each result with the bytes it took.
func readResultsFile(exec contract.Execution, withDetails bool, send func(contract.Result, int) error) error {
	path := artifactPath(exec, exec.ResultsFile)
	recs, err := openJSONLines(path)
	if err != nil {
		return fmt.Errorf("execution %s: results file: %w", exec.UUID, err)
	}
	defer recs.close()
	var details *jsonLines
	if withDetails && exec.DetailsFile != "" {
		dpath := artifactPath(exec, exec.DetailsFile)
		if details, err = openJSONLines(dpath); err != nil {
			return fmt.Errorf("execution %s: details file: %w", exec.UUID, err)
		}
		defer details.close()
	}
	for n := 1; ; n++ {
		var rec record
		var size int
		if withDetails {
			size, err = recs.decode(&rec)
		} else {
			size, err = recs.decode(&briefRecord{record: &rec})
		}
		if errors.Is(err, io.EOF) {
			if n-1 != exec.ResultCount {
				return fmt.Errorf("execution %s: results file %s holds %d results, not %d", exec.UUID, path, n-1, exec.ResultCount)
			}
			if details != nil && details.dec.More() {
				return fmt.Errorf("execution %s: details file %s holds more than the %d results", exec.UUID, details.path, exec.ResultCount)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("execution %s: results file %s, result %d: %w", exec.UUID, path, n, err)
		}
		if details != nil {
			var d any
			dsize, err := details.decode(&d)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("holds fewer than the %d results", exec.ResultCount)
				}
				return fmt.Errorf("execution %s: details file %s, result %d: %w", exec.UUID, details.path, n, err)
			}
			rec.Details, size = d, size+dsize
		}
		r := contract.Result(rec.plainResult)
		r.Extra = rec.Extra
		if err := send(r, size); err != nil {
			return err
		}
	}
}

// artifactPath is where a file the execution names is: relative to its
// artifacts unless absolute.
func artifactPath(exec contract.Execution, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(exec.Artifacts, name)
}

// jsonLines reads a file of JSON values, one a line.
type jsonLines struct {
	path string
	f    *os.File
	dec  *json.Decoder
}

func openJSONLines(path string) (*jsonLines, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	dec.UseNumber()
	return &jsonLines{path: path, f: f, dec: dec}, nil
}

// decode reads the next value into v and says how many bytes it took.
func (l *jsonLines) decode(v any) (int, error) {
	start := l.dec.InputOffset()
	err := l.dec.Decode(v)
	return int(l.dec.InputOffset() - start), err
}

func (l *jsonLines) close() { l.f.Close() }

// record is a result as a results file holds it: its own keys, and its
// extra keys under "extra" rather than beside them, so that it decodes in
// one pass (a contract.Result's JSON needs three to tell its keys from
// the extra ones), which for a file of millions is most of the time. A
// record's details are in the details file; a file written before they
// were kept apart has them in the record.
type record struct {
	plainResult
	Extra contract.Extra `json:"extra,omitempty"`
}

// briefRecord decodes a record but for any details in it, which the
// decoder steps over (the shallower "details" field hides the record's).
type briefRecord struct {
	*record
	Details skipped `json:"details"`
}

// skipped decodes any JSON value into nothing.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// plainResult is contract.Result without its JSON methods.
type plainResult contract.Result

// ResultWriter writes results one JSON result per line, the format Each
// reads back, and their details, one JSON value per line (null for a
// result without), to a file of their own.
type ResultWriter struct {
	w, dw     *bufio.Writer
	rec, det  bytes.Buffer // one result's line and its details' line
	enc, denc *json.Encoder
	n         int
}

// NewResultWriter writes results to w and their details to details.
func NewResultWriter(w, details io.Writer) *ResultWriter {
	rw := &ResultWriter{w: bufio.NewWriterSize(w, 64<<10), dw: bufio.NewWriterSize(details, 64<<10)}
	rw.enc, rw.denc = json.NewEncoder(&rw.rec), json.NewEncoder(&rw.det)
	rw.enc.SetEscapeHTML(false)
	rw.denc.SetEscapeHTML(false)
	return rw
}

// Write adds one result. Both its lines are encoded before either is
// written, so that a result that cannot be encoded leaves the two files
// in step.
func (w *ResultWriter) Write(r contract.Result) error {
	w.rec.Reset()
	w.det.Reset()
	if err := w.denc.Encode(r.Details); err != nil {
		return fmt.Errorf("result %d: details: %w", w.n+1, err)
	}
	r.Details = nil
	if err := w.enc.Encode(record{plainResult(r), r.Extra}); err != nil {
		return fmt.Errorf("result %d: %w", w.n+1, err)
	}
	if _, err := w.w.Write(w.rec.Bytes()); err != nil {
		return fmt.Errorf("result %d: %w", w.n+1, err)
	}
	if _, err := w.dw.Write(w.det.Bytes()); err != nil {
		return fmt.Errorf("result %d: details: %w", w.n+1, err)
	}
	w.n++
	return nil
}

// Count is how many results were written.
func (w *ResultWriter) Count() int { return w.n }

// Flush writes what is buffered.
func (w *ResultWriter) Flush() error { return errors.Join(w.w.Flush(), w.dw.Flush()) }

// Worst is the worst outcome among the execution's results ("" when it
// has none), read as Each reads them.
func Worst(exec contract.Execution) (contract.Outcome, error) {
	var worst contract.Outcome
	err := EachWithoutDetails(exec, func(r contract.Result) error {
		if worst == "" {
			worst = r.Outcome
		}
		worst = contract.Worst(worst, r.Outcome)
		return nil
	})
	return worst, err
}
