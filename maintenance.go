package keepwatch

import (
	"strings"
	"time"
)

// MaintenanceWindow mutes an installation from Start to End: its incidents
// are recorded, its notifications wait until the window ends, and it is
// shown as "maintenance".
type MaintenanceWindow struct {
	ID        int64     `json:"id"`
	SLC       string    `json:"slc"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Active reports whether the window covers at.
func (m MaintenanceWindow) Active(at time.Time) bool { return !at.Before(m.Start) && at.Before(m.End) }

// MaxMaintenance bounds one window: a forgotten window must not mute an
// installation for good.
const MaxMaintenance = 31 * 24 * time.Hour

// NewMaintenance validates a window a person asked for at now. A zero
// start means now; a start a moment in the past (a form filled in slowly)
// is moved to now.
func NewMaintenance(slc string, start, end time.Time, reason, by string, now time.Time) (MaintenanceWindow, error) {
	if start.IsZero() {
		start = now
	}
	if start.Before(now.Add(-time.Minute)) {
		return MaintenanceWindow{}, Invalid("start", "a scheduled maintenance must start in the future (it is now %s); choose “now” to begin at once", FormatTime(now))
	}
	if start.Before(now) {
		end, start = end.Add(now.Sub(start)), now
	}
	m := MaintenanceWindow{SLC: slc, Start: start.UTC(), End: end.UTC(), Reason: strings.TrimSpace(reason), CreatedBy: by}
	switch {
	case !m.End.After(m.Start):
		return m, Invalid("end", "a maintenance window must end after it starts")
	case m.End.Sub(m.Start) < time.Minute || m.End.Sub(m.Start) > MaxMaintenance:
		return m, Invalid("end", "a maintenance window lasts between one minute and 31 days")
	case !ValidText(m.Reason, 200):
		return m, Invalid("reason", "the reason is at most 200 printable characters")
	}
	return m, nil
}

// Scheduled reports whether the window starts after at.
func (m MaintenanceWindow) Scheduled(at time.Time) bool { return m.Start.After(at) }

// Stop is what a person stopping a window at at does to it: a window not
// yet started is cancelled (cancel is true: it never happened), a running
// one ends at at. A window already over cannot be stopped.
func (m MaintenanceWindow) Stop(at time.Time) (ended MaintenanceWindow, cancel bool, err error) {
	switch {
	case m.Scheduled(at):
		return m, true, nil
	case !m.End.After(at):
		return m, false, Errorf(ECONFLICT, "this maintenance window is already over")
	}
	m.End = at.UTC()
	return m, false, nil
}
