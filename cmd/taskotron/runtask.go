package main

import (
	"context"

	"github.com/taskotron-go/taskotron/runtask"
	"github.com/taskotron-go/taskotron/sandbox"
)

func init() {
	register(command{
		name:    "runtask",
		summary: "run one task formula here, like libtaskotron's runtask (-i ITEM -t TYPE FORMULA)",
		run: func(ctx context.Context, g *globals, args []string) error {
			if err := sandbox.Check(g.cfg.Runner.Sandbox, g.configPath); err != nil {
				return usagef("%v", err)
			}
			if code := runtask.Run(ctx, args, g.cfg, g.log, g.stdout, g.stderr); code != 0 {
				return exitStatus(code)
			}
			return nil
		},
	})
}
