package pipeline

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/taskotron-go/taskotron"
	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/config"
)

// Demo is where UnpackDemo put the demo built into the binary.
type Demo struct {
	Dir      string
	Tasks    string // the tasks folder, to seed the mirror from
	Fixtures string // the fixtures folder: messages/, koji/, bodhi/, distgit/, rpms/
}

// Messages is the folder of fixture messages.
func (d Demo) Messages() string { return filepath.Join(d.Fixtures, "messages") }

// YumRepoInfo is the fixtures' yumrepoinfo.conf.
func (d Demo) YumRepoInfo() string { return filepath.Join(d.Fixtures, "koji", "yumrepoinfo.conf") }

// UnpackDemo writes the tasks and fixtures built into the binary
// (taskotron.Demo) into dir, replacing what an earlier run left there, so
// that `up` outside a checkout runs the same demo as in one.
func UnpackDemo(dir string) (Demo, error) {
	d := Demo{Dir: dir, Tasks: filepath.Join(dir, "tasks"), Fixtures: filepath.Join(dir, "fixtures")}
	if err := os.RemoveAll(dir); err != nil {
		return d, fmt.Errorf("demo folder: %w", err)
	}
	err := fs.WalkDir(taskotron.Demo, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		raw, err := taskotron.Demo.ReadFile(p)
		if err != nil {
			return err
		}
		// An embedded file has no mode: a task's scripts (nvr_format.sh is
		// run as ./nvr_format.sh) are told by their #! line. Nothing in
		// fixtures/ is run by the demo.
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "tasks/") && bytes.HasPrefix(raw, []byte("#!")) {
			mode = 0o755
		}
		return os.WriteFile(target, raw, mode)
	})
	if err != nil {
		return d, fmt.Errorf("unpacking the demo into %s: %w", dir, err)
	}
	return d, nil
}

// Use points what cfg leaves at its defaults at the demo: the fixture
// messages and yumrepoinfo.conf (runner.mirror and koji.url and friends
// are the mirror and the service doubles `up` builds and starts anyway).
// A mirror in data_dir is brought up to date with the demo's tasks, so that
// a binary built from newer tasks runs them.
func (d Demo) Use(cfg *config.Config) error {
	def := config.Default()
	if cfg.Trigger.Messages == def.Trigger.Messages {
		cfg.Trigger.Messages = d.Messages()
	}
	if cfg.Koji.YumRepoInfo == def.Koji.YumRepoInfo {
		cfg.Koji.YumRepoInfo = d.YumRepoInfo()
	}
	if r := cfg.Resolved(); r.Runner.Mirror == r.Path("mirror") {
		if err := checkout.Seed(d.Tasks, r.Runner.Mirror); err != nil {
			return fmt.Errorf("task mirror from the demo: %w", err)
		}
	}
	return nil
}
