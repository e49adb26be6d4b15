package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/taskotron-go/taskotron/contract"
)

// chromium is Debian's browser, driven through the DevTools protocol.
const chromium = "/usr/bin/chromium"

func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the browser test needs Chromium at %s (apt-get install chromium): %v", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // as root
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancel(); cancelAlloc() })
	return ctx
}

// poll waits until a JavaScript predicate holds on the page.
func poll(expr string, within time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within))
}

// pollAcrossReloads is poll on a page that may reload meanwhile (the
// poll of the old page ends with the navigation; the new page is polled).
func pollAcrossReloads(ctx context.Context, expr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := chromedp.Do(ctx, poll(expr, time.Until(deadline)))
		// The navigation ends the old page's poll with an error of the
		// protocol ("target navigated", "cannot find context"): poll again.
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshotDir is where the browser test leaves its screenshots:
// $TASKOTRON_SCREENSHOTS, else a folder of the test's.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("TASKOTRON_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestExecutionPageFollowsTheLogLiveInABrowser opens a running execution's
// page in Chromium and sees the log lines the worker sends afterwards
// appear on it without a reload, then the page say the log is complete
// once the run ended; it takes screenshots of the queue and execution
// pages.
func TestExecutionPageFollowsTheLogLiveInABrowser(t *testing.T) {
	c := startCentral(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	const uuid = "7d9f6a52-live-log"
	run := event("w-1", uuid, 1, contract.StateRunning, now.Add(-40*time.Second))
	run.Worker = "worker-3.example.org:4242"
	act := event("w-2", uuid, 1, contract.StateRunning, now.Add(-30*time.Second))
	act.Worker, act.Action = run.Worker, "run_rpmlint"
	other := event("w2-1", "1c0ffee-other", 2, contract.StateRunning, now.Add(-2*time.Minute))
	other.Worker, other.Action = "worker-1.example.org:977", "download"
	retry := now.Add(4 * time.Minute)
	waitRetry := event("w3-1", "5ca1ab1e-retry", 1, contract.StateWaitingRetry, now.Add(-time.Minute))
	waitRetry.Worker, waitRetry.RetryAt, waitRetry.Reason = "worker-2.example.org:1312", &retry, "koji unreachable: connection refused"
	evs := []contract.ExecutionEvent{
		queued(uuid, "rpmlint", "xchat-0.5-1.fc20", "x86_64", 0, now.Add(-time.Minute)), run, act,
		queued("1c0ffee-other", "python-versions", "nano-7.2-1.fc40", "noarch", 0, now.Add(-5*time.Minute)), other,
		queued("5ca1ab1e-retry", "depcheck", "FEDORA-2026-1a2b3c", "x86_64", 0, now.Add(-3*time.Minute)), waitRetry,
		queued("0b5e55ed-high", "abicheck", "glibc-2.40-3.fc41", "x86_64", 10, now.Add(-20*time.Second)),
		queued("0ddba11-low", "rpmlint", "kernel-6.11.4-300.fc41", "x86_64", 0, now.Add(-90*time.Second)),
	}
	if err := c.client.Post(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var sent int64
	send := func(lines ...string) {
		t.Helper()
		data := strings.Join(lines, "")
		n, err := c.client.AppendLog(ctx, uuid, 1, "taskotron.log", sent, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		sent = n
	}
	send("[taskotron] run starting\n", "[taskotron] action run_rpmlint starting\n")

	b := browser(t)
	if err := chromedp.Do(b,
		chromedp.Navigate(c.url+"/executions/"+uuid),
		poll(`document.getElementById("log").textContent.includes("action run_rpmlint starting")`, 20*time.Second),
		// A reload would forget this.
		chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`),
	); err != nil {
		t.Fatalf("the execution page's log: %v", err)
	}
	// The worker sends more while the page is open.
	for i := 1; i <= 5; i++ {
		send(fmt.Sprintf("xchat.x86_64: W: line %d of the run\n", i))
		want := fmt.Sprintf("line %d of the run", i)
		if err := chromedp.Do(b, poll(fmt.Sprintf(`document.getElementById("log").textContent.includes(%q)`, want), 20*time.Second)); err != nil {
			t.Fatalf("%q did not appear on the open page: %v", want, err)
		}
	}
	// A character split between two sends shows whole, once.
	send("xchat.x86_64: W: spelling-error Summary(fr) caf\xc3")
	send("\xa9 déjà vu\n")
	if err := chromedp.Do(b, poll(`document.getElementById("log").textContent.includes("café déjà vu\n")`, 20*time.Second)); err != nil {
		t.Fatalf("a character split between two sends: %v", err)
	}
	same, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument === true`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b, chromedp.TextContent(chromedp.CSS("#log")))
	if err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(b, chromedp.TextContent(chromedp.CSS("#logstate")))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Error("the page was reloaded to show the new lines")
	}
	if strings.Count(text, "of the run") != 5 || !strings.HasPrefix(text, "[taskotron] run starting\n") || strings.ContainsRune(text, '\uFFFD') {
		t.Errorf("the log on the page is not each line once, in order:\n%s", text)
	}
	if !strings.Contains(state, "following") {
		t.Errorf("while it runs the page says %q, want it following the run", state)
	}
	dir := screenshotDir(t)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	shot("execution-running.png")

	// The run ends, and the worker's shipper sends the tail of the log
	// after that: the page says the log is complete once it is.
	end := event("w-3", uuid, 1, contract.StateFinished, time.Now().UTC())
	end.ExecutionStatus, end.Outcome, end.Results = "OK", contract.Passed, 1
	if err := c.client.Post(ctx, []contract.ExecutionEvent{end}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	send("[taskotron] run finished: OK\n")
	if err := c.client.CloseLogs(ctx, uuid, 1); err != nil {
		t.Fatal(err)
	}
	if err := pollAcrossReloads(b, `document.getElementById("logstate").textContent === "complete" &&
		document.getElementById("log").textContent.includes("run finished: OK")`, 40*time.Second); err != nil {
		t.Fatalf("the page did not see the log end: %v", err)
	}
	// And it shows the execution as it is now, finished, without the user
	// reloading it.
	if err := pollAcrossReloads(b, `document.querySelector("h1 .st") && document.querySelector("h1 .st").textContent === "finished"`, 20*time.Second); err != nil {
		t.Fatalf("the page does not show the run finished: %v", err)
	}

	// The queue page: running with worker, action and time; waiting in run
	// order with priority and age.
	if err := chromedp.Do(b, chromedp.Navigate(c.url+"/queue")); err != nil {
		t.Fatal(err)
	}
	queue, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"worker-1.example.org:977", "download", "abicheck", "Waiting for a retry", "depcheck", "koji unreachable"} {
		if !strings.Contains(queue, want) {
			t.Errorf("the queue page lacks %q:\n%s", want, queue)
		}
	}
	if strings.Index(queue, "abicheck") > strings.Index(queue, "kernel-6.11.4") {
		t.Errorf("the queue page lists the priority 10 job after a priority 0 one:\n%s", queue)
	}
	shot("queue.png")
	// Its result, stored by the reporter, is listed on its page.
	result := `{"outcome": "PASSED", "testcase": {"name": "dist.rpmlint"}, "groups": [{"uuid": "` + uuid + `"}],
		"note": "0 errors, 5 warnings", "ref_url": "` + c.url + `/artifacts/` + uuid + `/rpmlint.log", "data": {"item": "xchat-0.5-1.fc20", "arch": "x86_64", "type": "koji_build"}}`
	resp, err := http.Post(c.url+"/api/v2.0/results", "application/json", strings.NewReader(result))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("storing the result: %s", resp.Status)
	}
	if err := chromedp.Do(b, chromedp.Navigate(c.url+"/executions/"+uuid),
		poll(`document.getElementById("logstate").textContent === "complete"`, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	results := page[strings.Index(page, "Results"):]
	if !strings.Contains(results, "dist.rpmlint") || !strings.Contains(results, "PASSED") || !strings.Contains(results, "0 errors, 5 warnings") {
		t.Errorf("the execution page does not list its result:\n%s", page)
	}
	shot("execution-finished.png")
}
