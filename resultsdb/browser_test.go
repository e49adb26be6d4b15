package resultsdb

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts Debian's headless Chromium through the DevTools protocol
// with a 1280x800 window, the width QA reads the pages at.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("this test needs Debian's chromium package at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Env("HOME=" + t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

func screenshotDir(t *testing.T) string {
	if dir := os.Getenv("TASKOTRON_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// pageShape is what the layout checks read from the rendered page.
type pageShape struct {
	Title       string   `json:"title"`
	ScrollWidth float64  `json:"scrollWidth"`
	Rows        int      `json:"rows"`
	MaxRow      float64  `json:"maxRow"`
	MinNote     float64  `json:"minNote"`
	Text        string   `json:"text"`
	Logs        []string `json:"logs"`
	Regressions int      `json:"regressions"`
	Builds      []string `json:"builds"`
	ItemCells   int      `json:"itemCells"`
	Columns     string   `json:"columns"`
	HiddenX     float64  `json:"hiddenX"`
}

const shapeJS = `(() => {
  const rows = [...document.querySelectorAll("main table tbody tr")];
  const notes = [...document.querySelectorAll("main td.note")];
  return {
    title: document.querySelector("h1").textContent,
    scrollWidth: document.documentElement.scrollWidth,
    rows: rows.length,
    maxRow: Math.max(0, ...rows.map(r => r.getBoundingClientRect().height)),
    minNote: notes.length ? Math.min(...notes.map(n => n.getBoundingClientRect().width)) : 0,
    text: document.querySelector("main").innerText,
    logs: [...document.querySelectorAll("main a.log")].map(a => a.href),
    regressions: document.querySelectorAll("main table .regression").length,
    columns: [...document.querySelectorAll("main table thead th")].map(th => th.textContent + " " + Math.round(th.getBoundingClientRect().width)).join(", "),
    hiddenX: Math.max(0, ...[...document.querySelectorAll("main .scroll")].map(d => d.scrollWidth - d.clientWidth)),
    itemCells: document.querySelectorAll("main td.item").length,
    builds: [...document.querySelectorAll("main td.build")].map(td => td.textContent.trim()),
  };
})()`

// TestQAPagesInChromium loads the item, package, regressions and results
// pages at 1280x800 in Chromium and checks what QA would: the page fits the
// width, no row grows tall because a column is squeezed (the note column,
// one word wide, made every row a dozen lines), the colours and marks are
// there; it saves a screenshot of each and logs where.
func TestQAPagesInChromium(t *testing.T) {
	store := openTestStore(t, "sqlite")
	c := startServer(t, store, Options{AdditionalOutcomes: []string{"ABORTED", "CRASHED"}})
	c.t = t
	seedHistory(t, c)
	seedPages(t, c)
	ctx := browser(t)
	dir := screenshotDir(t)

	// A row of one or two lines is about 30 px; three clamped note lines
	// and a regression mark stay under 90.
	const maxRowHeight = 90
	load := func(name, path string) pageShape {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(c.base+path)); err != nil {
			t.Fatalf("%s (%s): %v", name, path, err)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
			t.Fatalf("%s (%s): %v", name, path, err)
		}
		shape, err := chromedp.Run(ctx, chromedp.Evaluate[pageShape](shapeJS))
		if err != nil {
			t.Fatalf("%s: read the layout: %v", name, err)
		}
		view, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("%s: screenshot: %v", name, err)
		}
		// 100: lossless, a PNG.
		full, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: full screenshot: %v", name, err)
		}
		for kind, shot := range map[string][]byte{"": view, "-full": full} {
			file := filepath.Join(dir, name+kind+".png")
			if err := os.WriteFile(file, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				t.Fatalf("%s: screenshot is not a PNG: %v", file, err)
			}
			t.Logf("screenshot %s (%dx%d)", file, img.Bounds().Dx(), img.Bounds().Dy())
			if kind == "" && (img.Bounds().Dx() != 1280 || img.Bounds().Dy() != 800) {
				t.Errorf("%s: %dx%d, want 1280x800", file, img.Bounds().Dx(), img.Bounds().Dy())
			}
			if kind == "" {
				checkBadges(t, name, img)
			}
		}
		t.Logf("%s: %d rows, tallest %.0f px, narrowest note %.0f px, page %.0f px wide; columns %s", name, shape.Rows, shape.MaxRow, shape.MinNote, shape.ScrollWidth, shape.Columns)
		if shape.ScrollWidth > 1280 {
			t.Errorf("%s: the page is %.0f px wide, wider than the 1280 px window", name, shape.ScrollWidth)
		}
		if shape.HiddenX > 0 {
			t.Errorf("%s: %.0f px of a table are scrolled out of sight", name, shape.HiddenX)
		}
		if shape.Rows == 0 {
			t.Errorf("%s: no table rows", name)
		}
		if shape.MaxRow > maxRowHeight {
			t.Errorf("%s: a row is %.0f px tall (over %d): a column is squeezed", name, shape.MaxRow, maxRowHeight)
		}
		if shape.MinNote != 0 && shape.MinNote < 200 {
			t.Errorf("%s: a note column is %.0f px wide", name, shape.MinNote)
		}
		return shape
	}

	item := load("item", "/results/latest?item=foo-1:0.9-1.fc40&type=koji_build&_distinct_on=arch")
	if item.Title != "foo-1:0.9-1.fc40" {
		t.Errorf("item page title %q", item.Title)
	}
	for _, want := range []string{"Not OK: a check failed", "1 regression since the previous build", "regression: was PASSED on foo-1.1-1.fc40",
		"infrastructure problem, not the package's", "what the outcomes mean"} {
		if !strings.Contains(strings.ToLower(item.Text), strings.ToLower(want)) {
			t.Errorf("item page lacks %q:\n%s", want, item.Text)
		}
	}
	if item.Regressions != 1 || item.Rows != 3 {
		t.Errorf("item page: %d rows, %d marked as regressions; want 3 and 1", item.Rows, item.Regressions)
	}
	if item.ItemCells != 0 {
		t.Errorf("the item page repeats the item in %d cells", item.ItemCells)
	}
	for _, l := range item.Logs {
		if strings.HasSuffix(l, "/") {
			t.Errorf("item page: log link %s is a folder", l)
		}
	}

	pkg := load("package", "/packages/foo")
	// Newest first as rpm orders them: the epoch first, '~' before the release.
	if order := []string{"foo-1:0.9-1.fc40", "foo-1.1-1.fc40", "foo-1.0-1.fc40", "foo-1.0~rc1-1.fc40"}; !slices.Equal(pkg.Builds, order) {
		t.Errorf("package page builds %v, want %v", pkg.Builds, order)
	}
	if strings.Contains(pkg.Text, "foo-devel") || pkg.Rows != 4 || pkg.Regressions != 2 {
		t.Errorf("package page: %d builds, %d regressions (want 4, 2, no foo-devel):\n%s", pkg.Rows, pkg.Regressions, pkg.Text)
	}

	// A package with as many checks as python-versions makes still fits.
	for _, tc := range []string{"dist.nvr-format", "dist.rpmlint", "dist.python-versions", "dist.python-versions.two_three",
		"dist.python-versions.naming_scheme", "dist.python-versions.requires_naming_scheme", "dist.python-versions.executables",
		"dist.python-versions.unversioned_shebangs", "dist.python-versions.python_usage", "dist.upgradepath"} {
		for _, nvr := range []string{"chromium-79.0.3945.130-1.fc33", "chromium-80.0.3987.132-1.fc33"} {
			outcome := "PASSED"
			if tc == "dist.rpmlint" && strings.HasPrefix(nvr, "chromium-80") {
				outcome = "NEEDS_INSPECTION"
			}
			c.mustPost("/api/v2.0/results", post(outcome, tc, nvr, "koji_build", map[string]any{"arch": []any{"x86_64", "src"}}))
		}
	}
	wide := load("package-wide", "/packages/chromium")
	if wide.Rows != 2 || wide.Regressions != 1 {
		t.Errorf("wide package page: %d builds, %d regressions; want 2, 1", wide.Rows, wide.Regressions)
	}

	reg := load("regressions", "/regressions")
	if reg.Rows != 3 || !strings.Contains(reg.Text, "foo-1.1-1.fc40") || !strings.Contains(reg.Text, "chromium-80.0.3987.132-1.fc33") {
		t.Errorf("regressions page: %d rows:\n%s", reg.Rows, reg.Text)
	}
	// The list the issue found squeezed: every column, long notes and all.
	load("results", "/results")
}

// checkBadges counts the pixels of the outcome colours (layout.html) in a
// screenshot: a page of results must show badges.
func checkBadges(t *testing.T, name string, img image.Image) {
	colours := map[string][3]uint32{"PASSED": {0x2e, 0x7d, 0x32}, "FAILED": {0xc6, 0x28, 0x28}}
	counts := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for n, c := range colours {
				if near(r>>8, c[0]) && near(g>>8, c[1]) && near(bl>>8, c[2]) {
					counts[n]++
				}
			}
		}
	}
	if counts["FAILED"]+counts["PASSED"] < 50 {
		t.Errorf("%s: the screenshot shows %v pixels of the badge colours; want badges", name, counts)
	}
	// These pages show a failure on their first screen.
	if (name == "item" || name == "regressions" || name == "package") && counts["FAILED"] < 50 {
		t.Errorf("%s: the screenshot shows %d pixels of FAILED's red; want a badge", name, counts["FAILED"])
	}
}

func near(a, b uint32) bool { return a+6 >= b && b+6 >= a }
