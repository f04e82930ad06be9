package main

import (
	"context"
	"errors"

	"keepwatch/internal/agent"
)

// enrollThenRun is `agent run --enroll-file`: the daemon starts once the
// state directory is enrolled, from the file an installer left or by hand.
// Under the Windows service manager this runs after the service reported
// itself running, so waiting for keepwatch never times the start out.
func enrollThenRun(d *agent.Daemon, file string) func(context.Context) error {
	return func(ctx context.Context) error {
		err := agent.FirstStart{Dir: d.Dir, File: file, Logger: d.Logger}.Run(ctx)
		if errors.Is(err, context.Canceled) {
			// Stopped while waiting: a clean stop, not a failure.
			return nil
		}
		if err != nil {
			return err
		}
		return d.Run(ctx)
	}
}
