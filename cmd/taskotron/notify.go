package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskotron-go/taskotron/capped"
	"github.com/taskotron-go/taskotron/notify"
)

func init() {
	register(command{
		name:    "notify",
		summary: "the notifier: result events → email digests and signed webhooks; notify subscribe|list|unsubscribe",
		run:     runNotify,
	})
}

const notifyUsage = "usage: taskotron notify [--listen ADDR]   (the role: consumes ResultsDB's events from amqp.url)\n" +
	"       taskotron notify subscribe (--email ADDRESS | --webhook URL --secret-file FILE) [--item GLOB] [--testcase GLOB] [--outcome A,B] [--origin NAME] [--regressions]\n" +
	"       taskotron notify list [--json] | notify unsubscribe ID   (against notify.db)"

func runNotify(ctx context.Context, g *globals, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "subscribe":
			return runSubscribe(ctx, g, args[1:])
		case "list":
			return runSubscriptions(ctx, g, args[1:])
		case "unsubscribe":
			return runUnsubscribe(ctx, g, args[1:])
		}
	}
	fs := newFlags("notify")
	listen := fs.String("listen", g.cfg.Notify.Listen, "serve the subscriptions page and /healthz, /metrics, /status here (default: notify.listen)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q\n%s", rest[0], notifyUsage)
	}
	svc, err := notify.New(ctx, g.cfg, g.log.With("role", "notify"), notify.Options{Listen: *listen})
	if err != nil {
		return usagef("%v", err)
	}
	return svc.Run(ctx)
}

// maxSecret caps a webhook secret file: a secret is a line.
const maxSecret = 4096

func runSubscribe(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("notify subscribe")
	var sub notify.Subscription
	fs.StringVar(&sub.Email, "email", "", "send email digests to this address")
	fs.StringVar(&sub.Webhook, "webhook", "", "POST each result, signed, to this URL")
	secretFile := fs.String("secret-file", "", "webhook: the file holding the secret requests are signed with (HMAC-SHA256)")
	fs.StringVar(&sub.Item, "item", "", "items matching this glob (python-*); default: every item")
	fs.StringVar(&sub.Testcase, "testcase", "", "testcases matching this glob (dist.*); default: every testcase")
	outcomes := fs.String("outcome", "", "these outcomes only, comma-separated (FAILED,NEEDS_INSPECTION); default: every outcome")
	fs.StringVar(&sub.Origin, "origin", "", "results of this origin only (a glob; results without one are taskotron's)")
	fs.BoolVar(&sub.Regressions, "regressions", false, "only results worse than the same testcase and arch on the package's previous build")
	asJSON := fs.Bool("json", false, "print the subscription as JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q\n%s", rest[0], notifyUsage)
	}
	sub.Outcomes = notify.SplitOutcomes(*outcomes)
	var secret string
	if *secretFile != "" {
		if sub.Webhook == "" {
			return usagef("--secret-file goes with --webhook")
		}
		raw, err := capped.ReadFile(*secretFile, maxSecret)
		if err != nil {
			return usagef("--secret-file %s: %v", *secretFile, err)
		}
		if secret = strings.TrimSpace(string(raw)); secret == "" {
			return usagef("--secret-file %s: empty", *secretFile)
		}
	}
	if err := sub.Prepare(secret); err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := openNotifyStore(ctx, g)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Add(ctx, &sub); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(g, sub)
	}
	fmt.Fprintf(g.stdout, "subscription %d: %s → %s\n", sub.ID, sub.Filter(), sub.Target())
	return nil
}

func runSubscriptions(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("notify list")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q\n%s", rest[0], notifyUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := openNotifyStore(ctx, g)
	if err != nil {
		return err
	}
	defer store.Close()
	subs, err := store.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if subs == nil {
			subs = []notify.Subscription{}
		}
		return printJSON(g, subs)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTARGET\tRESULTS\tWAITING\tSTATE\t")
	for _, s := range subs {
		state := "ok"
		switch {
		case s.Confirmed == nil && s.Expires != nil:
			state = "unconfirmed (made on the page), forgotten at " + s.Expires.Local().Format("2006-01-02 15:04")
		case s.Failures > 0 && s.NextRetry != nil:
			state = fmt.Sprintf("%d failures, next try %s: %s", s.Failures, s.NextRetry.Local().Format("15:04:05"), s.LastError)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t\n", s.ID, s.Target(), s.Filter(), s.Pending, state)
	}
	return tw.Flush()
}

func runUnsubscribe(ctx context.Context, g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("usage: taskotron notify unsubscribe ID")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("unsubscribe %q: want a subscription id (taskotron notify list)", args[0])
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := openNotifyStore(ctx, g)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Remove(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "subscription %d removed\n", id)
	return nil
}

// openNotifyStore opens the subscriptions of notify.db for one command.
func openNotifyStore(ctx context.Context, g *globals) (*notify.Store, error) {
	store, err := notify.Open(ctx, g.cfg.Notify.DB)
	if err != nil {
		return nil, fmt.Errorf("notify.db: %w", err)
	}
	return store, nil
}
