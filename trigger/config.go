package trigger

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/taskotron-go/taskotron/config"
)

// ReadCritpath reads a critpath list: one package name a line, # comments.
func ReadCritpath(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("critpath file %s: %w", path, err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.ContainsAny(s, " \t") {
			return nil, fmt.Errorf("critpath file %s:%d: one package name a line, got %q", path, line, s)
		}
		names = append(names, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("critpath file %s: %w", path, err)
	}
	return names, nil
}

// RulesVars are the configuration values a rules file may refer to.
func RulesVars(cfg config.Config, critpath []string) map[string]any {
	crit := make([]any, len(critpath))
	for i, c := range critpath {
		crit[i] = c
	}
	arches := make([]any, len(cfg.Trigger.Arches))
	for i, a := range cfg.Trigger.Arches {
		arches[i] = a
	}
	return map[string]any{"critpath_pkgs": crit, "valid_arches": arches}
}

// Setup is a Trigger built from the configuration, with what it opened.
type Setup struct {
	Options Options
	// RulesPath is the rules file ("" for the built-in rules), for reloads.
	RulesPath string
	// CritpathFile is read again on reloads: a cron job refreshes it.
	CritpathFile string
	Vars         map[string]any
	cfg          config.Config
	store        *SQLStore
}

// Close releases the dedup store.
func (s *Setup) Close() error {
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}

// Reload reads the critpath file and the rules file again into t (SIGHUP).
// When either has an error nothing changes: the rules and critpath list in
// use stay, and the error names the file and line.
func (s *Setup) Reload(t *Trigger) error {
	var critpath []string
	if s.CritpathFile != "" {
		var err error
		if critpath, err = ReadCritpath(s.CritpathFile); err != nil {
			return err
		}
	}
	vars := RulesVars(s.cfg, critpath)
	rules := DefaultRules()
	if s.RulesPath != "" {
		var err error
		if rules, err = LoadRules(s.RulesPath, vars); err != nil {
			return err
		}
	}
	rules.critpath = critpath
	s.Vars = vars
	t.SetRules(rules)
	return nil
}

// FromConfig builds trigger options from the configuration: rules (file or
// built-in), arches, critpath list, dedup store (state_db, default SQLite in
// data_dir), dedup window, fuse delay and discover settings. rulesPath, when
// not empty, overrides trigger.rules. withDedup false leaves dedup off.
func FromConfig(ctx context.Context, cfg config.Config, rulesPath string, withDedup bool, log *slog.Logger) (*Setup, error) {
	s := &Setup{RulesPath: cfg.Trigger.Rules, CritpathFile: cfg.Trigger.CritpathFile, cfg: cfg}
	if rulesPath != "" {
		s.RulesPath = rulesPath
	}
	var critpath []string
	if cfg.Trigger.CritpathFile != "" {
		var err error
		if critpath, err = ReadCritpath(cfg.Trigger.CritpathFile); err != nil {
			return nil, err
		}
	}
	s.Vars = RulesVars(cfg, critpath)
	rules := DefaultRules()
	if s.RulesPath != "" {
		var err error
		if rules, err = LoadRules(s.RulesPath, s.Vars); err != nil {
			return nil, err
		}
	}
	rules.critpath = critpath
	s.Options = Options{
		Rules: rules, Arches: cfg.Trigger.Arches, Critpath: critpath,
		DedupWindow: cfg.Trigger.DedupWindow, FuseDelay: cfg.Trigger.FuseDelay,
		GitCacheDir: cfg.Resolved().Trigger.GitCacheDir, RepoRewrite: cfg.Trigger.DiscoverRewrite, Log: log,
	}
	if withDedup {
		dsn := cfg.Resolved().Trigger.StateDB
		if strings.HasPrefix(dsn, "sqlite:") {
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return nil, fmt.Errorf("data folder %s: %w", cfg.DataDir, err)
			}
		}
		store, err := OpenDedup(ctx, dsn)
		if err != nil {
			return nil, err
		}
		s.store = store
		s.Options.Dedup = store
	}
	return s, nil
}
