package app

import (
	"context"
	"time"

	"keepwatch"
)

// Housekeeping paces. Work is done in small batches, each a short
// transaction of its own with a pause between, so that reports are never
// held up behind it.
const (
	defaultHousekeepEvery = time.Minute
	driveBatch            = 50
	batchPause            = 50 * time.Millisecond
)

// keepDrives compacts the drives' series and clears the drive verdicts
// that expired without a report, until ctx ends.
func (a *App) keepDrives(ctx context.Context) {
	t := time.NewTicker(a.cfg.HousekeepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.driveRound(ctx)
	}
}

// driveRound is one round of keepDrives.
func (a *App) driveRound(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := a.Store.CompactDrives(ctx, a.cfg.Now(), driveBatch)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("compact drive series", "err", err)
			}
			return
		}
		if n < driveBatch {
			break
		}
		if !sleep(ctx, batchPause) {
			return
		}
	}
	now := a.cfg.Now()
	ids, err := a.Store.ServersToJudge(ctx, now.Add(-keepwatch.ForecastStaleAfter))
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("find stale drive verdicts", "err", err)
		}
		return
	}
	for _, id := range ids {
		changes, err := keepwatch.JudgeDrives(ctx, a.Store, id, now)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("judge drives", "server", id, "err", err)
			}
			continue
		}
		a.publish(changes)
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
