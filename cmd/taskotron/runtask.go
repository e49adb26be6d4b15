package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/taskotron-go/taskotron/runner"
)

func init() {
	register(command{
		name:    "runtask",
		summary: "run one task formula here, like libtaskotron's runtask (-i ITEM -t TYPE FORMULA)",
		run: func(ctx context.Context, g *globals, args []string) error {
			if err := checkRuntaskValues(args); err != nil {
				fmt.Fprintf(g.stderr, "runtask: %v\n", err)
				return exitStatus(2)
			}
			if code := runner.Runtask(ctx, args, g.cfg, g.log, g.stdout, g.stderr); code != 0 {
				return exitStatus(code)
			}
			return nil
		},
	})
}

// checkRuntaskValues refuses, before anything runs or is reported, flag
// values the runner accepts as flags but refuses once the run has started,
// when it has already made a CRASHED result for "unknown-task" to report:
// an empty or blank item, an arch or uuid that cannot name a folder. The
// rules are the runner's own (runner.checkInput). A command line that does
// not parse is left to runner.Runtask, which says why with its usage.
func checkRuntaskValues(args []string) error {
	a, err := runner.ParseRuntaskArgs(args)
	if err != nil {
		return nil
	}
	switch {
	case strings.TrimSpace(a.Item) == "":
		return fmt.Errorf("-i %q: the item is blank; %s", a.Item, runner.RuntaskUsage)
	case strings.TrimSpace(a.Item) != a.Item:
		return fmt.Errorf("-i %q: the item starts or ends with a blank", a.Item)
	case strings.IndexFunc(a.Item, unicode.IsControl) >= 0:
		return fmt.Errorf("-i %q: the item holds a control character", a.Item)
	case len(a.Item) > 4096:
		return fmt.Errorf("-i: the item is %d bytes long; at most 4096", len(a.Item))
	case a.Arch == "": // -a given empty; left out, it is noarch
		return errors.New("-a \"\": the arch is empty (leave -a out for noarch)")
	case !nameLike(a.Arch, 64, "_"):
		return fmt.Errorf("-a %q: use letters, digits, '.', '_' and '-' only, at most 64, not starting with '.' or '-'", a.Arch)
	case a.UUID != "" && !nameLike(a.UUID, 128, ""):
		return fmt.Errorf("--uuid %q: use letters, digits, '.', '_' and '-' only, at most 128, starting with a letter or digit", a.UUID)
	}
	return nil
}

// nameLike tells a value that can name a folder: letters, digits, '.', '_'
// and '-', at most max bytes, starting with a letter, a digit or one of
// first.
func nameLike(v string, max int, first string) bool {
	if v == "" || len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 && strings.IndexByte(first, c) < 0 || i > 0 && strings.IndexByte("._-", c) < 0) {
			return false
		}
	}
	return true
}
