package reporter

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/taskotron-go/taskotron/config"
)

// SpoolDir is the spool folder of a configuration (reporter.spool, default
// <data_dir>/spool).
func SpoolDir(cfg config.Config) string { return cfg.Resolved().Reporter.Spool }

// SpoolPending counts what the spool folder at dir holds without opening a
// Reporter or creating anything: a folder that does not exist holds nothing.
func SpoolPending(dir string) (Pending, error) {
	var p Pending
	s := &spool{dir: dir}
	count := func(sub string) (int, error) {
		if _, err := os.Stat(filepath.Join(dir, sub)); errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return s.count(sub)
	}
	var errs [4]error
	p.Posts, errs[0] = count(postsQueue)
	p.RejectedPosts, errs[1] = count("rejected")
	p.Comments, errs[2] = count(commentsQueue)
	p.RejectedComments, errs[3] = count(commentsRejected)
	return p, errors.Join(errs[:]...)
}
