package ingest

import (
	"context"
	"runtime"
	"time"

	"keepwatch"
)

// committer spends heartbeats' sequence numbers in the store in groups:
// the heartbeats arriving while one commit runs form the next (no timer:
// the commit itself is the wait), so a busy node commits hundreds in one
// transaction and a quiet one answers a lone heartbeat after one round
// trip. Nothing is acknowledged before its commit.
type committer struct {
	store   Store
	maxSize int
	in      chan beatReq
}

type beatReq struct {
	beat keepwatch.Beat
	done chan beatResult
}

type beatResult struct {
	outcome keepwatch.BeatOutcome
	err     error
}

func newCommitter(s Store) *committer {
	return &committer{store: s, maxSize: 1000, in: make(chan beatReq, 4096)}
}

// commit queues a heartbeat and waits for its outcome.
func (c *committer) commit(ctx context.Context, b keepwatch.Beat) (keepwatch.BeatOutcome, error) {
	req := beatReq{beat: b, done: make(chan beatResult, 1)}
	select {
	case c.in <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.outcome, r.err
	case <-ctx.Done():
		// The commit may still happen; the agent retries under the same
		// number and is told "replayed", which means delivered.
		return 0, ctx.Err()
	}
}

// run commits groups until ctx ends; heartbeats still queued then are
// refused as unavailable (the agent retries them).
func (c *committer) run(ctx context.Context) {
	group := make([]beatReq, 0, c.maxSize)
	beats := make([]keepwatch.Beat, 0, c.maxSize)
	for {
		group, beats = group[:0], beats[:0]
		select {
		case <-ctx.Done():
			c.drain()
			return
		case r := <-c.in:
			group = append(group, r)
		}
		// What is queued now, then again after the handlers that are
		// ready to run have run, while that brings more: a larger group
		// for the same commit, at no cost to a lone heartbeat.
		for rounds := 0; ; rounds++ {
			before := len(group)
		collect:
			for len(group) < c.maxSize {
				select {
				case r := <-c.in:
					group = append(group, r)
				default:
					break collect
				}
			}
			if rounds == 4 || len(group) >= c.maxSize || (rounds > 0 && len(group) == before) {
				break
			}
			runtime.Gosched()
		}
		for _, r := range group {
			beats = append(beats, r.beat)
		}
		// The commit outlives a cancelled caller: what is committed must be
		// answered, or at least not half done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		outcomes, err := c.store.CommitHeartbeats(cctx, beats)
		cancel()
		for i, r := range group {
			if err != nil {
				r.done <- beatResult{err: err}
			} else {
				r.done <- beatResult{outcome: outcomes[i]}
			}
		}
	}
}

func (c *committer) drain() {
	for {
		select {
		case r := <-c.in:
			r.done <- beatResult{err: keepwatch.Errorf(keepwatch.EUNAVAILABLE, "keepwatch is shutting down, try again")}
		default:
			return
		}
	}
}
