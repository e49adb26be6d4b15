package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/worker"
)

// The demo unpacked from the binary is tasks/ and fixtures/ as git has
// them: the same files, the same content, scripts executable.
func TestUnpackedDemoIsTheRepositorysTasksAndFixtures(t *testing.T) {
	d, err := UnpackDemo(filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", "..", "ls-files", "-s", "tasks", "fixtures").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		meta, path, _ := strings.Cut(line, "\t")
		mode := strings.Fields(meta)[0]
		if strings.HasPrefix(filepath.Base(path), ".") {
			continue // go:embed leaves out dot files (.gitignore); the demo needs none
		}
		want, err := os.ReadFile(filepath.Join("..", path))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		got, gerr := os.ReadFile(filepath.Join(d.Dir, path))
		if gerr != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: unpacked differs (%v)", path, gerr)
			continue
		}
		info, _ := os.Stat(filepath.Join(d.Dir, path))
		// Modes matter for the tasks, whose scripts run; nothing in
		// fixtures/ runs in the demo.
		if exe := info.Mode()&0o111 != 0; strings.HasPrefix(path, "tasks/") && exe != (mode == "100755") {
			t.Errorf("%s: mode %v, git has %s", path, info.Mode(), mode)
		}
		n++
	}
	if n < 50 {
		t.Errorf("only %d files checked", n)
	}
	if _, err := os.Stat(d.YumRepoInfo()); err != nil {
		t.Error(err)
	}
	if m, _ := filepath.Glob(filepath.Join(d.Messages(), "*.json")); len(m) != 7 {
		t.Errorf("messages %v", m)
	}
}

// Outside a checkout the demo's messages, yumrepoinfo.conf and tasks are
// used, unless the configuration names others.
func TestDemoIsUsedWhereTheConfigurationKeepsItsDefaults(t *testing.T) {
	d, err := UnpackDemo(filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("", []string{"TASKOTRON_DATA_DIR=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Use(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Trigger.Messages != d.Messages() || cfg.Koji.YumRepoInfo != d.YumRepoInfo() {
		t.Errorf("messages %q, yumrepoinfo %q", cfg.Trigger.Messages, cfg.Koji.YumRepoInfo)
	}
	for _, task := range []string{"nvr-format", "rpmlint", "python-versions", "upgradepath"} {
		if _, err := os.Stat(filepath.Join(cfg.Runner.Mirror, task, ".git")); err != nil {
			t.Errorf("mirror of %s: %v", task, err)
		}
	}
	mine := config.Default()
	mine.DataDir = t.TempDir()
	mine.Trigger.Messages, mine.Koji.YumRepoInfo, mine.Runner.Mirror = "/my/messages", "/my/yumrepoinfo.conf", filepath.Join(t.TempDir(), "my-mirror")
	if err := d.Use(&mine); err != nil {
		t.Fatal(err)
	}
	if mine.Trigger.Messages != "/my/messages" || mine.Koji.YumRepoInfo != "/my/yumrepoinfo.conf" {
		t.Errorf("configured paths replaced: %q %q", mine.Trigger.Messages, mine.Koji.YumRepoInfo)
	}
	if _, err := os.Stat(mine.Runner.Mirror); !os.IsNotExist(err) {
		t.Errorf("a configured mirror was written to (%v)", err)
	}
}

func TestLiveLinesFitTheTerminal(t *testing.T) {
	var screen bytes.Buffer
	live := NewLive(&screen, func() int { return 30 })
	p := Progress{Messages: 3, ByStatus: map[string]int{"jobs": 2, "ignored": 1}, Queued: 4, Done: 2,
		ByOutcome: map[contract.Outcome]int{contract.Passed: 1, contract.Aborted: 1},
		Running:   []worker.JobState{{Task: "python-versions", Arch: "noarch", Item: "chromium-80.0.3987.132-1.fc33", Action: "check the rpms"}}}
	live.Draw(p)
	fmt.Fprint(live, "level=WARN msg=\"something to know\"")
	frames := strings.Split(screen.String(), "\r\x1b[J")
	if len(frames) != 3 || !strings.HasSuffix(frames[1], "\x1b[3A") {
		t.Fatalf("want a frame, then the cursor 3 lines up and a redraw: %q", screen.String())
	}
	last := frames[2]
	if !strings.HasPrefix(last, "level=WARN msg=\"something to know\"\r\n") {
		t.Errorf("the log line is not above the frame: %q", last)
	}
	for _, line := range strings.Split(strings.TrimSuffix(last, "\r\n"), "\r\n")[1:] {
		if utf8.RuneCountInString(line) > 29 {
			t.Errorf("line %q is wider than the terminal", line)
		}
	}
	if !strings.Contains(last, "messages  3 read: 2 made job…") || !strings.Contains(last, "jobs      4 queued, 1 runnin…") {
		t.Errorf("frame %q", last)
	}
	full := strings.Join(p.Lines(), "\n")
	if !strings.Contains(full, "jobs      4 queued, 1 running, 2 done: 1 PASSED, 1 ABORTED") {
		t.Errorf("lines %q", full)
	}
}
