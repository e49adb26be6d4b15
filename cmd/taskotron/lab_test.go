package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskotron-go/taskotron/checkout"
	"github.com/taskotron-go/taskotron/execdb"
	"github.com/taskotron-go/taskotron/labs"
	"github.com/taskotron-go/taskotron/reporter"
)

// labTasks: quick says where it ran; slow marks its start and takes a few
// seconds, so that its lab can be killed in the middle.
var labTasks = map[string]string{
	"quick": `name: quick
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'sleep 0.3; printf "TAP version 13\n1..1\nok 1 - quick\n  ---\n  item: %s\n  type: koji_build\n  ...\n" "$$0"', "${item}"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`,
	"slow": `name: slow
namespace: scratch
actions:
  - name: work
    shell:
      - [sh, -c, 'echo started; sleep 4; printf "TAP version 13\n1..1\nok 1 - slow\n  ---\n  item: %s\n  type: koji_build\n  ...\n" "$$0"', "${item}"]
    export: out
  - name: report
    resultsdb:
      results: ${out}
`,
}

// labNet places the central server and each lab in a network namespace of
// its own: a lab's only link goes to the central server's namespace, and
// the test reaches the central server through a link of its own. Where
// namespaces cannot be made (not root, no ip), everything runs on loopback
// in separate processes, and the test says so.
type labNet struct {
	t       *testing.T
	ok      bool
	hubNS   string
	hubAddr string // what the test dials
	labHub  map[string]string
	labNS   map[string]string
}

func newLabNet(t *testing.T, labNames ...string) *labNet {
	n := &labNet{t: t, labHub: map[string]string{}, labNS: map[string]string{}}
	port := 20000 + rand.IntN(20000)
	fallback := func(why string) *labNet {
		t.Logf("network namespaces not used (%s): the central server and the labs run as separate processes on loopback", why)
		n.ok, n.hubNS = false, ""
		n.hubAddr = fmt.Sprintf("127.0.0.1:%d", port)
		for _, l := range labNames {
			n.labHub[l], n.labNS[l] = "http://"+n.hubAddr, ""
		}
		return n
	}
	if os.Geteuid() != 0 {
		return fallback("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fallback("no ip command")
	}
	tag := fmt.Sprintf("%05x", rand.IntN(1<<20))
	octet := 16 + rand.IntN(200)
	var cleanup []func()
	t.Cleanup(func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	})
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	addNS := func(name string) error {
		if err := run("netns", "add", name); err != nil {
			return err
		}
		cleanup = append(cleanup, func() { exec.Command("ip", "netns", "del", name).Run() })
		return run("-n", name, "link", "set", "lo", "up")
	}
	// link joins two namespaces ("" is the test's own) over a /30.
	link := func(i int, a, b string) (aAddr, bAddr string, err error) {
		va, vb := fmt.Sprintf("tl%s%da", tag, i), fmt.Sprintf("tl%s%db", tag, i)
		if err := run("link", "add", va, "type", "veth", "peer", "name", vb); err != nil {
			return "", "", err
		}
		cleanup = append(cleanup, func() { exec.Command("ip", "link", "del", va).Run() })
		aAddr, bAddr = fmt.Sprintf("10.231.%d.%d", octet, 4*i+1), fmt.Sprintf("10.231.%d.%d", octet, 4*i+2)
		for _, side := range []struct{ dev, ns, addr string }{{va, a, aAddr}, {vb, b, bAddr}} {
			pre := []string{}
			if side.ns != "" {
				if err := run("link", "set", side.dev, "netns", side.ns); err != nil {
					return "", "", err
				}
				pre = []string{"-n", side.ns}
			}
			if err := run(append(pre, "addr", "add", side.addr+"/30", "dev", side.dev)...); err != nil {
				return "", "", err
			}
			if err := run(append(pre, "link", "set", side.dev, "up")...); err != nil {
				return "", "", err
			}
		}
		return aAddr, bAddr, nil
	}
	n.hubNS = "tlhub" + tag
	if err := addNS(n.hubNS); err != nil {
		return fallback(err.Error())
	}
	_, hubSide, err := link(0, "", n.hubNS)
	if err != nil {
		return fallback(err.Error())
	}
	n.hubAddr = fmt.Sprintf("%s:%d", hubSide, port)
	for i, l := range labNames {
		ns := fmt.Sprintf("tl%s%s", tag, l)
		if len(ns) > 15 {
			ns = ns[:15]
		}
		ns = fmt.Sprintf("%s%d", ns[:min(len(ns), 13)], i)
		if err := addNS(ns); err != nil {
			return fallback(err.Error())
		}
		hubAddr, _, err := link(i+1, n.hubNS, ns)
		if err != nil {
			return fallback(err.Error())
		}
		n.labHub[l], n.labNS[l] = fmt.Sprintf("http://%s:%d", hubAddr, port), ns
	}
	n.ok = true
	t.Logf("network namespaces: central server in %s at %s; labs %v, each linked to the central server only", n.hubNS, n.hubAddr, n.labNS)
	return n
}

// command runs bin in ns (or here, when ns is empty).
func nsCommand(ns, bin string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

func TestLabsAsSeparateProcesses(t *testing.T) {
	bin := buildTaskotron(t)
	dir := t.TempDir()
	hubData := filepath.Join(dir, "hub")
	tasks := filepath.Join(dir, "tasks")
	for name, text := range labTasks {
		os.MkdirAll(filepath.Join(tasks, name), 0o755)
		os.WriteFile(filepath.Join(tasks, name, "runtask.yml"), []byte(text), 0o644)
	}
	if err := checkout.Seed(tasks, filepath.Join(hubData, "mirror")); err != nil {
		t.Fatal(err)
	}
	nw := newLabNet(t, "lab-a", "lab-b", "lab-c")
	hubEnv := append(os.Environ(), "TASKOTRON_DATA_DIR="+hubData, "TASKOTRON_EXECDB_TOKEN=admin-secret",
		"TASKOTRON_LABS_LEASE_TIMEOUT=2s", "TASKOTRON_RUNNER_MAX_ATTEMPTS=3", "TASKOTRON_REPORTER_FLUSH_INTERVAL=1s")
	tokens := map[string]string{}
	for _, l := range []string{"lab-a", "lab-b", "lab-c"} {
		cmd := exec.Command(bin, "lab", "token", "add", l)
		cmd.Env = hubEnv
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("lab token add %s: %v", l, err)
		}
		tokens[l] = strings.TrimSpace(string(out))
	}
	listen := nw.hubAddr
	if nw.ok {
		listen = "0.0.0.0:" + strings.Split(nw.hubAddr, ":")[1]
	}
	hubLog := &lockedBuffer{}
	hub := nsCommand(nw.hubNS, bin, "resultsdb", "serve", "--listen", listen)
	hub.Env, hub.Stdout, hub.Stderr = hubEnv, hubLog, hubLog
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() })
	hubURL := "http://" + nw.hubAddr
	waitHTTP(t, "the central server", hubURL+"/api/v2.0/", 20*time.Second, func(code int, _ string) bool { return code > 0 && code < 500 })

	type agent struct {
		cmd *exec.Cmd
		log *lockedBuffer
	}
	startLab := func(lab, token string, labels ...string) agent {
		args := []string{"lab", "--hub", nw.labHub[lab], "--token", token, "--poll-wait", "5s"}
		for _, l := range labels {
			args = append(args, "--label", l)
		}
		cmd := nsCommand(nw.labNS[lab], bin, args...)
		// Nothing of the central server's: a lab holds its token only.
		cmd.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, lab+"-"+fmt.Sprint(rand.Uint32())))
		log := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return agent{cmd, log}
	}
	a := startLab("lab-a", tokens["lab-a"], "cpu=cortex-a9", "board=beaglebone-black", "arch=armv7hl")
	b := startLab("lab-b", tokens["lab-b"], "cpu=cortex-a9,board=wandboard", "arch=armv7hl")
	c := startLab("lab-c", tokens["lab-c"], "arch=x86_64", "cpu=xeon")

	ctx := context.Background()
	admin, err := labs.NewClient(hubURL, "admin-secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(task string, where labs.Labels, n int) []string {
		var reqs []labs.NewRequest
		for i := range n {
			reqs = append(reqs, labs.NewRequest{TaskName: task, Item: fmt.Sprintf("pkg-%s-%d-1.fc40", task, i), ItemType: "koji_build", Where: where})
		}
		got, err := admin.Put(ctx, reqs...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		return ids
	}
	get := func(id string) labs.Request {
		r, err := admin.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitEnded := func(ids []string, within time.Duration) {
		deadline := time.Now().Add(within)
		for _, id := range ids {
			for r := get(id); r.State != labs.StateFinished; r = get(id) {
				if time.Now().After(deadline) {
					t.Fatalf("request %s is %s (lab %s), want finished\nhub:\n%s\nlab-a:\n%s\nlab-b:\n%s\nlab-c:\n%s", id, r.State, r.Lab, hubLog, a.log, b.log, c.log)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	// Requests go only to matching labs; "any cortex-a9" spreads.
	bbb := put("quick", labs.Labels{"board": "beaglebone-black"}, 2)
	x86 := put("quick", labs.Labels{"arch": "x86_64"}, 2)
	a9 := put("quick", labs.Labels{"cpu": "cortex-a9"}, 8)
	all := append(append(append([]string{}, bbb...), x86...), a9...)
	waitEnded(all, 90*time.Second)
	for _, id := range bbb {
		if r := get(id); r.Lab != "lab-a" {
			t.Errorf("board=beaglebone-black request ran on %s", r.Lab)
		}
	}
	for _, id := range x86 {
		if r := get(id); r.Lab != "lab-c" {
			t.Errorf("arch=x86_64 request ran on %s", r.Lab)
		}
	}
	spread := map[string]int{}
	for _, id := range a9 {
		spread[get(id).Lab]++
	}
	if spread["lab-a"] == 0 || spread["lab-b"] == 0 || spread["lab-c"] != 0 {
		t.Errorf("cortex-a9 requests ran %v, want both cortex-a9 labs and not lab-c", spread)
	}
	t.Logf("cortex-a9 requests: %v", spread)

	// A lab SIGKILLed mid-run: the request completes on the other.
	slow := put("slow", labs.Labels{"cpu": "cortex-a9"}, 1)[0]
	var victim string
	waitHTTP(t, "the slow request to run", hubURL+labs.APIPrefix+"/requests/"+slow, 30*time.Second, func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"state":"running"`)
	})
	victim = get(slow).Lab
	time.Sleep(time.Second) // in the middle of its run
	victimCmd := map[string]agent{"lab-a": a, "lab-b": b}[victim]
	if victimCmd.cmd == nil {
		t.Fatalf("the slow request ran on %q", victim)
	}
	victimCmd.cmd.Process.Signal(syscall.SIGKILL)
	victimCmd.cmd.Wait()
	waitEnded([]string{slow}, 60*time.Second)
	r := get(slow)
	if r.Lab == victim || r.Attempt != 2 {
		t.Errorf("after %s was killed the request ended on %s at attempt %d, want the other lab at attempt 2", victim, r.Lab, r.Attempt)
	}
	execs, _ := execdb.NewClient(hubURL, "", nil)
	d, err := execs.Get(ctx, slow)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Attempts) != 2 || d.Attempts[0].State != "crashed" || d.Attempts[1].State != "finished" || !strings.Contains(d.Attempts[0].Worker, victim) {
		t.Errorf("execution record: %+v, want attempt 1 crashed on %s, attempt 2 finished", d.Attempts, victim)
	}

	// Results in ResultsDB exactly once each.
	rdb, _ := reporter.NewResultsDBClient(hubURL+"/api/v2.0", reporter.ClientOptions{})
	for _, id := range append(all, slow) {
		rs, err := rdb.GroupResults(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Outcome != "PASSED" {
			t.Errorf("request %s: ResultsDB holds %+v, want one PASSED", id, rs)
		}
	}

	// A wrong token: one clear line at the agent, which stops.
	wrong := nsCommand(nw.labNS["lab-c"], bin, "lab", "--hub", nw.labHub["lab-c"], "--token", "tlab_not-a-token")
	wrong.Env = append(os.Environ(), "TASKOTRON_DATA_DIR="+filepath.Join(dir, "wrong"))
	out, err := wrong.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lab token refused by the central server") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("agent with a wrong token: %v\n%s\nwant one line saying the token was refused", err, out)
	}
	// A token revoked while its lab runs: the agent stops with the reason.
	rev := exec.Command(bin, "lab", "token", "revoke", "lab-c")
	rev.Env = hubEnv
	if out, err := rev.CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(c.log.String(), "revoked") {
			t.Errorf("lab-c after its token was revoked: %v\n%s", err, c.log)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("lab-c still runs with a revoked token:\n%s", c.log)
	}
	// The boards page shows the labs beside the queue.
	_, page := httpGet(t, hubURL+"/boards")
	for _, l := range []string{"lab-a", "lab-b", "cpu=cortex-a9", "board=wandboard"} {
		if !strings.Contains(page, l) {
			t.Errorf("/boards lacks %q", l)
		}
	}
	if nw.ok {
		// A lab's namespace reaches the central server and nothing else.
		probe := nsCommand(nw.labNS["lab-a"], bin, "request", "list", "--hub", "http://127.0.0.1:5001")
		if out, err := probe.CombinedOutput(); err == nil {
			t.Errorf("lab-a's namespace reached 127.0.0.1:5001: %s", out)
		}
	}
}
