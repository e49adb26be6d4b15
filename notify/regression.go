package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskotron-go/taskotron/httpclient"
	"github.com/taskotron-go/taskotron/redact"
)

// Regressions says whether a result is a regression, and from which
// result: ResultsDB knows the history, the notifier keeps none.
type Regressions interface {
	Previous(ctx context.Context, r Result) (*Result, bool, error)
}

// resultsDB asks our ResultsDB's /regressions?result_id=N, which judges a
// result by the rules of package regression whether or not it was rerun
// since.
type resultsDB struct {
	api    string // …/api/v2.0
	client *retryablehttp.Client
}

func newResultsDB(api string, log *slog.Logger) *resultsDB {
	return &resultsDB{api: strings.TrimSuffix(api, "/"),
		client: httpclient.New(httpclient.Settings{Service: "ResultsDB", Retries: 2, Log: log})}
}

// maxAnswer caps ResultsDB's answer: one or two results.
const maxAnswer = 4 << 20

func (c *resultsDB) Previous(ctx context.Context, r Result) (*Result, bool, error) {
	u := c.api + "/regressions?result_id=" + strconv.FormatInt(r.ID, 10)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, fmt.Errorf("regressions at %s: %w", redact.URL(c.api), err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("regressions at %s: %w", redact.URL(c.api), redact.URLError(err, c.api))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, false, fmt.Errorf("regressions at %s: %w", redact.URL(c.api), err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, fmt.Errorf("%s has no /regressions (only taskotron's ResultsDB has it; notify.results_url)", redact.URL(c.api))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("regressions at %s: %s: %s", redact.URL(c.api), resp.Status, httpclient.ErrorMessage(raw))
	}
	var page struct {
		Data []struct {
			Result   json.RawMessage `json:"result"`
			Previous json.RawMessage `json:"previous"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, false, fmt.Errorf("regressions at %s: the answer is not a page of regressions: %w", redact.URL(c.api), err)
	}
	for _, d := range page.Data {
		got, err := ParseEvent(d.Result)
		if err != nil || got.ID != r.ID {
			continue
		}
		prev, err := ParseEvent(d.Previous)
		if err != nil {
			return nil, false, fmt.Errorf("regressions at %s: previous of result %d: %w", redact.URL(c.api), r.ID, err)
		}
		return &prev, true, nil
	}
	return nil, false, nil
}
