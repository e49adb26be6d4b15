package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	guuid "github.com/google/uuid"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/printable"
	"github.com/taskotron-go/taskotron/reporter"
	"github.com/taskotron-go/taskotron/results"
)

func init() {
	register(command{
		name:    "report",
		summary: "turn an execution or task output (TAP13, ResultYAML) into ResultsDB results and send them",
		run:     runReport,
	})
}

const reportUsage = "usage: taskotron report [--dry-run] [--json] [-i ITEM -t TYPE -a ARCH --checkname NAME --namespace NS --uuid UUID --artifacts DIR --origin URL] FILE|-, or taskotron report --flush"

// reportOutput is what `report --json` prints.
type reportOutput struct {
	UUID     string                   `json:"uuid"`
	Format   string                   `json:"format"`
	DryRun   bool                     `json:"dry_run"`
	Results  []contract.Result        `json:"results"`
	Posts    []contract.ResultsDBPost `json:"posts"`
	Comments []contract.BodhiComment  `json:"comments"`
	Problems []string                 `json:"problems,omitempty"`
	Errors   []string                 `json:"errors,omitempty"`
	Delivery *reporter.Delivery       `json:"delivery,omitempty"`
}

func runReport(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("report")
	dryRun := fs.Bool("dry-run", false, "print the posts without sending them")
	asJSON := fs.Bool("json", false, "print JSON")
	flush := fs.Bool("flush", false, "send the spooled posts and Bodhi comments and exit")
	item := fs.String("i", "", "item, for task output that does not name it")
	itemType := fs.String("t", "", "item type (koji_build, bodhi_update, …)")
	arch := fs.String("a", "", "arch, for task output that does not name it")
	check := fs.String("checkname", "", "checkname for task output that does not name it (the formula's name)")
	namespace := fs.String("namespace", "", "namespace prefixed to checknames (dist, pkg, scratch, …)")
	uuid := fs.String("uuid", "", "execution uuid (the ResultsDB group); default a new one")
	artifacts := fs.String("artifacts", "", "the execution's artifacts folder, to link results to their artifact")
	origin := fs.String("origin", "", "task repo origin URL, checked against reporter.namespaces")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	opts := reporter.OptionsFromConfig(g.cfg, g.log)
	if *flush {
		if len(rest) > 0 {
			return usagef("--flush takes no file; %s", reportUsage)
		}
		r, err := reporter.New(opts)
		if err != nil {
			return err
		}
		before, _ := r.Pending()
		err = r.Flush(ctx)
		after, _ := r.Pending()
		summary := fmt.Sprintf("%d of %d spooled posts sent, %d left; %d of %d Bodhi comments sent, %d left",
			before.Posts-after.Posts, before.Posts, after.Posts, before.Comments-after.Comments, before.Comments, after.Comments)
		if n := after.RejectedPosts + after.RejectedComments - before.RejectedPosts - before.RejectedComments; n > 0 {
			summary += fmt.Sprintf("; %d refused and set aside in the spool", n)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", summary, err)
		}
		fmt.Fprintln(g.stdout, summary)
		return nil
	}
	if len(rest) != 1 {
		return usagef("%s", reportUsage)
	}
	in, name, closeIn, err := openInput(rest[0], g.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	if peek, _ := in.Peek(64 << 10); !*asJSON && !isExecutionJSON(peek) && results.DetectFormat(peek) == results.FormatTAP {
		// TAP streams: read, posted and printed a test at a time, in
		// constant memory whatever its length.
		d := results.Defaults{CheckName: *check, Namespace: *namespace, Item: *item, Type: *itemType, Arch: *arch, Origin: *origin}
		if f := g.cfg.Reporter.Namespaces; f != "" && *origin != "" {
			ns, err := results.LoadNamespaces(f)
			if err != nil {
				return err
			}
			d.Namespaces = ns
		}
		exec := contract.Execution{UUID: *uuid, ExecutionStatus: contract.ExecutionOK, Item: *item, ItemType: *itemType, TaskName: *check, Arch: *arch, Artifacts: *artifacts}
		if exec.UUID == "" {
			exec.UUID = guuid.NewString()
		}
		return streamReport(ctx, g, in, name, exec, d, opts, *dryRun)
	}
	data, err := bus.ReadAllCapped(in)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}

	out := reportOutput{DryRun: *dryRun}
	var exec contract.Execution
	var parseErr error
	if isExecutionJSON(data) {
		if err := json.Unmarshal(data, &exec); err != nil {
			return fmt.Errorf("%s: not a valid execution: %w", name, err)
		}
		out.Format = "execution"
	} else {
		d := results.Defaults{CheckName: *check, Namespace: *namespace, Item: *item, Type: *itemType, Arch: *arch, Origin: *origin}
		if f := g.cfg.Reporter.Namespaces; f != "" && *origin != "" {
			ns, err := results.LoadNamespaces(f)
			if err != nil {
				return err
			}
			d.Namespaces = ns
		}
		parsed, err := results.ParseOutputDetail(data, d)
		if parsed.Format == "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		parseErr = err
		out.Format, out.Problems = parsed.Format, parsed.Problems
		exec = contract.Execution{UUID: *uuid, ExecutionStatus: contract.ExecutionOK, Results: parsed.Results,
			Item: *item, ItemType: *itemType, TaskName: *check, Arch: *arch, Artifacts: *artifacts}
	}
	if *uuid != "" {
		exec.UUID = *uuid
	}
	if exec.UUID == "" {
		exec.UUID = guuid.NewString()
	}
	if *artifacts != "" {
		exec.Artifacts = *artifacts
	}
	out.UUID = exec.UUID
	if out.Results, err = results.ResultsToReport(exec); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}

	r, err := reporter.New(dryRunOptions(opts, *dryRun))
	if err != nil {
		return err
	}
	if out.Posts, err = r.Posts(exec); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	out.Comments = r.ExecutionComments(exec, out.Posts)
	if parseErr != nil {
		var oe *results.OutputError
		if errors.As(parseErr, &oe) {
			out.Errors = oe.Lines
		} else {
			out.Errors = []string{parseErr.Error()}
		}
	}
	var refused error
	if !*dryRun {
		d, err := r.Deliver(ctx, exec)
		if err != nil {
			printReport(g, out, *asJSON, opts.ResultsDBURL)
			return err
		}
		out.Delivery = &d
		refused = refusedError(d, len(out.Posts), opts, g)
	}
	if err := printReport(g, out, *asJSON, opts.ResultsDBURL); err != nil {
		return err
	}
	switch {
	case parseErr != nil && refused != nil:
		return fmt.Errorf("%s: %w; %w", name, parseErr, refused)
	case parseErr != nil:
		// The readable results were reported; the output was still broken.
		return fmt.Errorf("%s: %w", name, parseErr)
	case refused != nil:
		return fmt.Errorf("%s: %w", name, refused)
	}
	return nil
}

// dryRunOptions keeps a dry run from touching the network or the disk;
// Bodhi comments are still computed.
func dryRunOptions(o reporter.Options, dry bool) reporter.Options {
	if dry {
		o.ResultsDBURL, o.SpoolDir = "", ""
	}
	return o
}

// openInput opens a file, or stdin for "-", for reading with a look ahead.
func openInput(arg string, stdin io.Reader) (*bufio.Reader, string, func(), error) {
	if arg == "-" {
		return bufio.NewReaderSize(stdin, 64<<10), "stdin", func() {}, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, arg, nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	return bufio.NewReaderSize(f, 64<<10), arg, func() { f.Close() }, nil
}

// streamReport reports a TAP stream as it is read: each result is printed,
// posted (or spooled) and forgotten before the next test is read.
func streamReport(ctx context.Context, g *globals, in io.Reader, name string, exec contract.Execution, d results.Defaults, opts reporter.Options, dryRun bool) error {
	r, err := reporter.New(dryRunOptions(opts, dryRun))
	if err != nil {
		return err
	}
	var sess *reporter.Session
	if !dryRun {
		if sess, err = r.Start(ctx, exec); err != nil {
			return err
		}
		defer sess.Abort()
	}
	poster := r.Poster(exec)
	w := bufio.NewWriter(g.stdout)
	defer w.Flush()
	fmt.Fprintf(w, "execution %s (tap, read as a stream):\n", exec.UUID)
	n := 0
	parsed, parseErr := results.StreamTAP(in, d, func(res contract.Result) error {
		n++
		printResult(w, res)
		p, err := poster.Post(res)
		if err != nil {
			return err
		}
		for _, c := range r.Comments([]contract.ResultsDBPost{p}) {
			fmt.Fprintf(w, "bodhi comment on %s: %s\n", printable.Line(c.Update), printable.Line(c.Text))
		}
		if sess != nil {
			return sess.AddPost(p)
		}
		return nil
	})
	if parsed.Format == "" && parseErr != nil {
		return fmt.Errorf("%s: %w", name, parseErr)
	}
	var oe *results.OutputError
	if parseErr != nil && !errors.As(parseErr, &oe) {
		return fmt.Errorf("%s: %w", name, parseErr) // not the output's fault: delivery failed
	}
	out := reportOutput{Problems: parsed.Problems, DryRun: dryRun}
	if oe != nil {
		out.Errors = oe.Lines
	}
	printProblems(w, out)
	fmt.Fprintf(w, "%d results\n", n)
	var refused error
	if sess != nil {
		dv, err := sess.Finish()
		if err != nil {
			return err
		}
		printDelivery(w, &dv)
		refused = refusedError(dv, n, opts, g)
	} else {
		fmt.Fprintf(w, "nothing sent (--dry-run); the posts would go to %s/results\n", apiURL(opts.ResultsDBURL))
	}
	switch {
	case parseErr != nil && refused != nil:
		return fmt.Errorf("%s: %w; %w", name, parseErr, refused)
	case parseErr != nil:
		return fmt.Errorf("%s: %w", name, parseErr)
	case refused != nil:
		return fmt.Errorf("%s: %w", name, refused)
	}
	return nil
}

// isExecutionJSON tells an execution (a JSON object with execution keys)
// from task output.
func isExecutionJSON(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(trimmed, &m) != nil {
		return false
	}
	_, a := m["execution_status"]
	_, b := m["uuid"]
	_, c := m["results"]
	return a || b || c
}

func printReport(g *globals, out reportOutput, asJSON bool, url string) error {
	if asJSON {
		if out.Results == nil {
			out.Results = []contract.Result{}
		}
		if out.Posts == nil {
			out.Posts = []contract.ResultsDBPost{}
		}
		if out.Comments == nil {
			out.Comments = []contract.BodhiComment{}
		}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := g.stdout
	fmt.Fprintf(w, "execution %s (%s): %d results\n", out.UUID, out.Format, len(out.Results))
	for _, r := range out.Results {
		printResult(w, r)
	}
	printProblems(w, out)
	verb := "sent, or spooled when ResultsDB is away,"
	if out.DryRun {
		verb = "would be sent"
	}
	fmt.Fprintf(w, "posts (%s to %s/results):\n", verb, apiURL(url))
	for _, p := range out.Posts {
		raw, _ := json.Marshal(p)
		fmt.Fprintf(w, "  %s\n", raw)
	}
	for _, c := range out.Comments {
		fmt.Fprintf(w, "bodhi comment on %s: %s\n", printable.Line(c.Update), printable.Line(c.Text))
	}
	printDelivery(w, out.Delivery)
	return nil
}

func apiURL(url string) string {
	return strings.TrimSuffix(strings.TrimSuffix(url, "/"), "/api/v2.0") + "/api/v2.0"
}

// printResult writes one result's line. It appends to one buffer rather
// than formatting: a stream of 400,000 results is printed a line each.
func printResult(w io.Writer, r contract.Result) {
	b := make([]byte, 0, 160)
	b = append(b, "  "...)
	b = append(b, r.Outcome...)
	for i := len(r.Outcome); i < 16; i++ {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = append(b, printable.Line(r.CheckName)...)
	b = append(b, "  "...)
	b = append(b, printable.Line(r.Type)...)
	b = append(b, ' ')
	b = append(b, printable.Line(r.Item)...)
	if a := r.Arch.String(); a != "" {
		b = append(append(b, ' '), printable.Line(a)...)
	}
	if r.Note != "" {
		b = append(append(b, "  ("...), printable.Line(r.Note)...)
		b = append(b, ')')
	}
	w.Write(append(b, '\n'))
}

func printProblems(w io.Writer, out reportOutput) {
	said := map[string]bool{}
	for _, e := range out.Errors {
		said[e] = true
	}
	for _, p := range out.Problems {
		if !said[p] { // most problems are errors too: said once, below
			fmt.Fprintf(w, "problem: %s\n", printable.Line(p))
		}
	}
	for _, e := range out.Errors {
		fmt.Fprintf(w, "error: %s\n", printable.Line(e))
	}
}

func printDelivery(w io.Writer, d *reporter.Delivery) {
	switch {
	case d == nil:
	case d.Already:
		fmt.Fprintln(w, "already reported: nothing sent")
	default:
		fmt.Fprintf(w, "stored %d, already present %d, spooled %d, rejected %d, bodhi comments %d\n", d.Stored, d.Present, d.Spooled, d.Rejected, d.Comments)
	}
}

// refusedError is the failure of results ResultsDB refused: sending again
// cannot help, so it fails the command, as it does runtask. Refused Bodhi
// comments are a warning: the results are in.
func refusedError(d reporter.Delivery, total int, opts reporter.Options, g *globals) error {
	comments := ""
	if d.CommentsRejected > 0 {
		comments = fmt.Sprintf("Bodhi refused %d comments (kept in %s)", d.CommentsRejected, filepath.Join(opts.SpoolDir, "comments-rejected"))
	}
	switch {
	case d.Rejected > 0 && comments != "":
		return fmt.Errorf("ResultsDB refused %d of %d results (kept in %s with its answer); %s", d.Rejected, total, filepath.Join(opts.SpoolDir, "rejected"), comments)
	case d.Rejected > 0:
		return fmt.Errorf("ResultsDB refused %d of %d results (kept in %s with its answer)", d.Rejected, total, filepath.Join(opts.SpoolDir, "rejected"))
	case comments != "":
		fmt.Fprintf(g.stderr, "taskotron report: %s\n", comments)
	}
	return nil
}
