package agent

import (
	"context"
	"time"

	"keepwatch/internal/protocol"
)

// samplerCheck runs the drive sampler on its schedule, like a check that
// finds no conditions: each round's samples leave in a status report of
// their own, recorded at once (it carries the full set of conditions as
// every status report does, so it changes none). A round that could not
// be recorded (consent off) is replaced by the next.
func (d *Daemon) samplerCheck() check {
	return check{name: "drive_samples", every: d.Config.Checks.DriveSamples.Every.D(),
		run: func(ctx context.Context, now time.Time) ([]protocol.PayloadCondition, error) {
			samples, err := d.sampler.sample(ctx, now)
			if len(samples) > 0 {
				d.setDrives(samples)
			}
			return nil, err
		}}
}

// setDrives keeps a round of samples for the next status report, and
// records that report now once the daemon is under way (before, the
// first status report takes them).
func (d *Daemon) setDrives(samples []protocol.PayloadDrive) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drives = samples
	if d.started && d.state.Consent {
		if _, err := d.recordStatusLocked(nil, true); err != nil {
			d.Logger.Error("record drive samples", "err", err)
		}
	}
}
