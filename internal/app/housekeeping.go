package app

import (
	"context"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
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

// How long history is kept by default, and at least.
const (
	DefaultHistoryDays = 400
	DefaultAuditDays   = 730
	MinKeepDays        = 30
	pruneBatch         = 1000
)

// pruneHistory deletes history older than its period, in batches of
// pruneBatch rows with a pause between, until ctx ends.
func (a *App) pruneHistory(ctx context.Context) {
	t := time.NewTicker(a.cfg.HousekeepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.PruneOnce(ctx)
	}
}

// PruneOnce deletes all history older than its period, batch by batch,
// and returns how many rows it deleted.
func (a *App) PruneOnce(ctx context.Context) int {
	total := 0
	for _, table := range store.HistoryTables {
		days := a.cfg.HistoryDays
		if table == "audit_log" {
			days = a.cfg.AuditDays
		}
		for ctx.Err() == nil {
			before := a.cfg.Now().Add(-time.Duration(days) * 24 * time.Hour)
			n, err := a.Store.PruneHistory(ctx, table, before, pruneBatch)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("prune history", "table", table, "err", err)
				}
				break
			}
			total += n
			if n < pruneBatch || !sleep(ctx, batchPause) {
				break
			}
		}
	}
	return total
}
