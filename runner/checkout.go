package runner

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
)

// NewCheckout makes the task checkout the configuration describes:
// runner.mirror (default <data_dir>/mirror), runner.repos, and a cache in
// <work_dir>/.checkouts (default <data_dir>/work/.checkouts; no execution
// uuid starts with a dot).
func NewCheckout(cfg config.Config) (*checkout.Checkout, error) {
	cfg = cfg.Resolved()
	mirror := cfg.Runner.Mirror
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		return nil, fmt.Errorf("task mirror %s: %w", mirror, err)
	}
	cache := filepath.Join(cfg.Runner.WorkDir, ".checkouts")
	return checkout.New(checkout.Options{Mirrors: []string{mirror}, Repos: cfg.Runner.Repos, CacheDir: cache})
}
