package main

import (
	"context"
	"fmt"

	"github.com/taskotron-go/taskotron/fakes"
)

func init() {
	register(command{
		name:    "fakes",
		summary: "serve the Koji, Bodhi and dist-git test doubles from fixture data",
		run:     runFakes,
	})
}

// runFakes serves the doubles until interrupted and prints the
// configuration overrides that point taskotron at them.
func runFakes(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("fakes")
	fixtures := fs.String("fixtures", "fixtures", "fixtures folder (koji/koji.yaml, bodhi/updates.json, distgit/)")
	kojiAddr := fs.String("koji", "127.0.0.1:8081", "Koji hub and packages address (empty: off)")
	bodhiAddr := fs.String("bodhi", "127.0.0.1:8082", "Bodhi address (empty: off)")
	distgitAddr := fs.String("distgit", "127.0.0.1:8083", "dist-git address (empty: off)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q (usage: taskotron fakes [-fixtures DIR] [-koji ADDR] [-bodhi ADDR] [-distgit ADDR])", rest[0])
	}
	set, err := fakes.Start(*fixtures, fakes.Addrs{Koji: *kojiAddr, Bodhi: *bodhiAddr, DistGit: *distgitAddr}, g.log)
	if err != nil {
		return err
	}
	defer set.Close()
	fmt.Fprintln(g.stdout, "# taskotron test doubles are up; point taskotron at them with:")
	for _, kv := range set.Env() {
		fmt.Fprintf(g.stdout, "export %s\n", kv)
	}
	g.log.Info("fakes serving", "fixtures", *fixtures)
	<-ctx.Done()
	return nil
}
