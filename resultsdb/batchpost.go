package resultsdb

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// POST /api/v2.0/results/batch is ours only: a JSON list of result
// posts, each what POST /results takes, stored in one transaction, all or
// none, and answered in order. ResultsDB 2.2 has one POST per result,
// which bounds a reporter to one round trip and one commit per result;
// clients ask for the batch and fall back to single posts where it is not
// found (ResultsDB 2.2 answers 404).

// MaxBatchResults is how many results one batch may hold.
const MaxBatchResults = 1000

// batchJSON is the answer to a batch: the stored results, in the order
// posted.
type batchJSON struct {
	Data []resultJSON `json:"data"`
}

func (s *server) postResultBatch(w http.ResponseWriter, r *http.Request) error {
	if !isJSON(r.Header.Get("Content-Type")) {
		return &statusError{code: http.StatusUnsupportedMediaType, msg: "Send the batch with Content-Type: application/json"}
	}
	limit := s.opts.MaxSubmissionBytes
	if limit <= 0 {
		limit = defaultMaxSubmissionBytes
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &statusError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("Batch larger than %d bytes; split it", limit)}
		}
		return badf("Malformed Request: reading the body: %v", err)
	}
	items, err := parseList(raw)
	if err != nil {
		return err
	}
	if len(items) > MaxBatchResults {
		return &statusError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("Batch of %d results; at most %d, split it", len(items), MaxBatchResults)}
	}
	batch := make([]NewResult, 0, len(items))
	for i, item := range items {
		in, err := s.parseBatchItem(r, item)
		if err != nil {
			return inBatch(i, err)
		}
		batch = append(batch, in)
	}
	created, err := s.store.CreateResults(r.Context(), batch)
	if err != nil {
		return err
	}
	out := batchJSON{Data: make([]resultJSON, 0, len(created))}
	base := s.base(r)
	for _, res := range created {
		out.Data = append(out.Data, s.resultOut(base, res))
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// parseBatchItem checks one post of a batch as POST /results checks its
// body, origin included.
func (s *server) parseBatchItem(r *http.Request, item any) (NewResult, error) {
	body, ok := item.(map[string]any)
	if !ok {
		return NewResult{}, badf("Malformed Request: a result must be a JSON object, not %s", jsonType(item))
	}
	in, err := parseResultPost(body, s.outcomes)
	if err != nil {
		return in, err
	}
	in.Origin = s.opts.Origin
	if s.opts.Origins {
		if in.Origin, err = s.postOrigin(r, body); err != nil {
			return in, err
		}
	}
	in.Event = s.opts.Events
	return in, nil
}

// inBatch names the result of a batch an error is about, keeping its
// status.
func inBatch(i int, err error) error {
	where := fmt.Sprintf("result %d of the batch", i)
	var bad *badRequest
	var st *statusError
	switch {
	case errors.As(err, &bad):
		return badf("Malformed Request: %s: %s", where, strings.TrimPrefix(bad.msg, "Malformed Request: "))
	case errors.As(err, &st):
		return &statusError{code: st.code, msg: where + ": " + st.msg}
	}
	return fmt.Errorf("%s: %w", where, err)
}

// parseList parses a JSON list, keeping numbers as written.
func parseList(raw []byte) ([]any, error) {
	v, err := parseJSON(raw, "a JSON list of results")
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, badf("Malformed Request: the body must be a JSON list of results, not %s", jsonType(v))
	}
	return list, nil
}
