package reporter

import (
	"log/slog"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
)

// OptionsFromConfig wires a Reporter from the configuration: ResultsDB
// (resultsdb.url, or the embedded server at resultsdb.listen), the spool
// (reporter.spool, default <data_dir>/spool), links and Bodhi. Run the
// spool's background loop with cfg.Reporter.FlushInterval.
func OptionsFromConfig(cfg config.Config, log *slog.Logger) Options {
	cfg = cfg.Resolved()
	url := cfg.ResultsDB.URL
	if url == "" && cfg.ResultsDB.Listen != "" {
		url = "http://" + cfg.ResultsDB.Listen
	}
	o := Options{
		ResultsDBURL: url,
		SpoolDir:     cfg.Reporter.Spool,
		ArtifactsURL: cfg.Runner.ArtifactsURL,
		ExecDBURL:    cfg.Reporter.ExecDBURL,
		TestcaseURL:  cfg.Reporter.TestcaseURL,
		Token:        cfg.ResultsDB.Token,
		Log:          log,
		RetryMax:     cfg.Reporter.Retries,
	}
	if cfg.Bodhi.Comments {
		o.Bodhi = BodhiOptions{URL: cfg.Bodhi.URL, Token: cfg.Bodhi.Token, Span: cfg.Bodhi.CommentSpan,
			Timeout: cfg.Bodhi.Timeout, Retries: cfg.Bodhi.Retries}
	}
	if cfg.Reporter.Retries <= 0 {
		o.RetryMax = -1 // none: in Options 0 means the default
	}
	for _, s := range cfg.Bodhi.CommentOn {
		o.Bodhi.CommentOn = append(o.Bodhi.CommentOn, contract.Outcome(s))
	}
	return o
}
