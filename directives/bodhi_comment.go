package directives

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/taskotron-go/taskotron/bodhi"
	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

func init() { Register("bodhi_comment", Func(runBodhiComment)) }

// runBodhiComment turns results (TAP13 or ResultYAML, as text, data or a
// file) into one comment per Bodhi update, in AutoQA's words, and hands
// them to the reporter's Bodhi commenter through Env.AddComments (the
// libtaskotron ≤0.3 directive, reference §2.4 and §7). doreport is
// onlyfailed (default: the outcomes in bodhi.comment_on) or all; broken
// runs (ABORTED, CRASHED) are never commented. Results about Koji builds
// go to the updates holding those builds, looked up in Bodhi; when Bodhi
// is away, the comment names the build instead (Extra "build", one
// comment per build) and the reporter, which keeps it in its spool until
// Bodhi answers, finds the updates then: a Bodhi outage holds up neither
// the run nor its results.
func runBodhiComment(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "bodhi_comment", m: params}
	data, err := resultsInput(params, env, "results")
	if err != nil {
		return nil, p.errorf("%w", err)
	}
	s := func(k string) string { v, _ := env.Vars[k].(string); return v }
	results, err := results.ParseOutput(data, results.Defaults{
		CheckName: s("checkname"), Namespace: s("namespace"), Item: s("item"), Type: s("type"), Arch: s("arch"),
	})
	if err != nil {
		return nil, p.errorf("results: %w", err)
	}
	mode, err := p.str("doreport", false)
	if err != nil {
		return nil, err
	}
	onlyFailed := true
	switch mode {
	case "", "onlyfailed":
	case "all":
		onlyFailed = false
	default:
		return nil, p.errorf("doreport %q: want all or onlyfailed", mode)
	}
	update, err := p.str("update", false)
	if err != nil {
		return nil, err
	}
	failing := map[contract.Outcome]bool{}
	for _, o := range env.Config.Bodhi.CommentOn {
		failing[contract.Outcome(strings.ToUpper(o))] = true
	}
	if len(failing) == 0 {
		failing[contract.Failed], failing[contract.NeedsInspection] = true, true
	}
	var client *bodhi.Client
	bodhiAway := false
	lines := map[string][]string{}
	byBuild := map[string][]string{}
	for _, r := range results {
		if r.Outcome.Broken() || (onlyFailed && !failing[r.Outcome]) {
			continue
		}
		targets := []string{update}
		if update == "" {
			switch r.Type {
			case "bodhi_update":
				targets = []string{r.Item}
			case "koji_build":
				if bodhiAway {
					byBuild[r.Item] = append(byBuild[r.Item], commentLine(r, env))
					continue
				}
				if client == nil {
					client = bodhiClient(env)
				}
				us, err := client.UpdatesForBuild(ctx, r.Item)
				if err != nil && ctx.Err() == nil && unavailable(err) {
					fedoraLog(env).Warn("bodhi_comment: Bodhi unavailable, the reporter will find the build's updates later", "build", r.Item, "err", err)
					bodhiAway = true // the other builds do not wait through retries too
					byBuild[r.Item] = append(byBuild[r.Item], commentLine(r, env))
					continue
				}
				if err != nil {
					return nil, bodhiErr(err)
				}
				targets = targets[:0]
				for _, u := range us {
					targets = append(targets, u.Alias)
				}
			default:
				fedoraLog(env).Info("bodhi_comment: result is not about an update or a build", "item", r.Item, "type", r.Type)
				continue
			}
		}
		for _, t := range targets {
			lines[t] = append(lines[t], commentLine(r, env))
		}
	}
	aliases := make([]string, 0, len(lines))
	for a := range lines {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	var cs []contract.BodhiComment
	out := []any{}
	for _, a := range aliases {
		c := contract.BodhiComment{Update: a, Text: strings.Join(lines[a], "\n"), Karma: 0}
		cs = append(cs, c)
		out = append(out, map[string]any{"update": c.Update, "text": c.Text, "karma": c.Karma})
	}
	builds := make([]string, 0, len(byBuild))
	for b := range byBuild {
		builds = append(builds, b)
	}
	sort.Strings(builds)
	for _, b := range builds {
		c := contract.BodhiComment{Text: strings.Join(byBuild[b], "\n"), Karma: 0, Extra: contract.Extra{"build": b}}
		cs = append(cs, c)
		out = append(out, map[string]any{"update": "", "build": b, "text": c.Text, "karma": c.Karma})
	}
	env.AddComments(cs)
	return out, nil
}

// unavailable tells a Bodhi that is away (network errors, 5xx, after the
// retries) from one that answered.
func unavailable(err error) bool {
	var ue *bodhi.UnavailableError
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

// commentLine words one result as AutoQA did (results.CommentText:
// "Taskotron: <check> test <OUTCOME> on <arch>. Result log: <url>"), the
// same words the reporter uses for the comments it makes itself.
func commentLine(r contract.Result, env *Env) string {
	check := r.CheckName
	if check == "" {
		check, _ = env.Vars["checkname"].(string)
	}
	base := env.Config.Runner.ArtifactsURL
	if base == "" {
		line := fmt.Sprintf("Taskotron: %s test %s", check, r.Outcome)
		if a := r.Arch.String(); a != "" {
			line += " on " + a
		}
		return line + "."
	}
	u := strings.TrimSuffix(base, "/")
	if id, _ := env.Vars["uuid"].(string); id != "" {
		u += "/" + id
	}
	if r.Artifact != "" && !filepath.IsAbs(r.Artifact) {
		u += "/" + r.Artifact
	}
	return results.CommentText(check, r.Outcome, r.Arch.String(), u)
}
