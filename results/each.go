package results

import (
	"bufio"
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
// (exec.ResultsFile, relative to exec.Artifacts), read from it one at a
// time: constant memory however many there are. It stops at fn's first
// error and returns it.
func Each(exec contract.Execution, fn func(contract.Result) error) error {
	if exec.ResultsFile == "" {
		for _, r := range exec.Results {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	path := exec.ResultsFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(exec.Artifacts, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("execution %s: results file: %w", exec.UUID, err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	dec.UseNumber()
	for n := 1; ; n++ {
		var rec record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			if n-1 != exec.ResultCount {
				return fmt.Errorf("execution %s: results file %s holds %d results, not %d", exec.UUID, path, n-1, exec.ResultCount)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("execution %s: results file %s, result %d: %w", exec.UUID, path, n, err)
		}
		r := contract.Result(rec.plainResult)
		r.Extra = rec.Extra
		if err := fn(r); err != nil {
			return err
		}
	}
}

// record is a result as a results file holds it: its own keys, and its
// extra keys under "extra" rather than beside them, so that it decodes in
// one pass (a contract.Result's JSON needs three to tell its keys from
// the extra ones), which for a file of millions is most of the time.
type record struct {
	plainResult
	Extra contract.Extra `json:"extra,omitempty"`
}

// plainResult is contract.Result without its JSON methods.
type plainResult contract.Result

// ResultWriter writes results one JSON result per line, the format Each
// reads back.
type ResultWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
	n   int
}

// NewResultWriter writes results to w.
func NewResultWriter(w io.Writer) *ResultWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &ResultWriter{w: bw, enc: enc}
}

// Write adds one result.
func (w *ResultWriter) Write(r contract.Result) error {
	if err := w.enc.Encode(record{plainResult(r), r.Extra}); err != nil {
		return fmt.Errorf("result %d: %w", w.n+1, err)
	}
	w.n++
	return nil
}

// Count is how many results were written.
func (w *ResultWriter) Count() int { return w.n }

// Flush writes what is buffered.
func (w *ResultWriter) Flush() error { return w.w.Flush() }

// Worst is the worst outcome among the execution's results ("" when it
// has none), read as Each reads them.
func Worst(exec contract.Execution) (contract.Outcome, error) {
	var worst contract.Outcome
	err := Each(exec, func(r contract.Result) error {
		if worst == "" {
			worst = r.Outcome
		}
		worst = contract.Worst(worst, r.Outcome)
		return nil
	})
	return worst, err
}
