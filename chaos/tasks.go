package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// standIn is the formula of a fast task of our own that takes the place of
// a real task needing Koji builds the fakes do not have (the stream's
// items are made up): it works a random moment, so that workers are killed
// mid-task, then passes. Its result has no item: the runner fills in the
// job's item, type and arch.
const standIn = `name: %s
namespace: scratch
desc: |
  Chaos soak stand-in for %s: works up to %s, then passes.
maintainer: chaos
input:
  args:
    - [koji_build, koji_tag, bodhi_update]
actions:
  - name: work a moment
    shell:
      - [./work.sh, "%.3f"]
    export: tap_output
  - name: report results to resultsdb
    resultsdb:
      results: ${tap_output}
`

const workScript = `#!/bin/sh
# work.sh MAX: sleep up to MAX seconds, then print one passing TAP13 test.
max=${1:-1}
sleep "$(awk -v m="$max" -v s="$$" 'BEGIN { srand(s); printf "%.3f", rand() * m }')"
printf 'TAP version 13\n1..1\nok 1 - done\n'
`

// realTasks are run as they are in tasks/: they need no outside service.
var realTasks = map[string]bool{"nvr-format": true}

// writeTasks makes the task folder the mirror is built from: the real
// tasks that need no service, copied from tasks/, and stand-ins for the
// others.
func writeTasks(root, dir string, names []string, work time.Duration) error {
	for _, name := range names {
		dest := filepath.Join(dir, name)
		if realTasks[name] {
			if err := copyDir(filepath.Join(root, "tasks", name), dest); err != nil {
				return fmt.Errorf("task %s: %w", name, err)
			}
			continue
		}
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		formula := fmt.Sprintf(standIn, name, name, work, work.Seconds())
		if err := os.WriteFile(filepath.Join(dest, "runtask.yml"), []byte(formula), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dest, "work.sh"), []byte(workScript), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func copyDir(src, dest string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dest, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, raw, info.Mode().Perm())
	})
}
