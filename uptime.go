package keepwatch

import (
	"fmt"
	"math"
	"time"
)

// Uptime: how much of a window a recording server was available, counted
// only over the part of the window keepwatch watched it for this
// integrator. Before the integrator registered the installation, or
// before the server first enrolled, nothing is known: that time is not
// "up", it is not covered, and the coverage is shown beside the figure.

// Outage is a time a server was unavailable; To is zero while it lasts.
type Outage struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to,omitzero"`
}

// Outages returns one server's outages from its installation's
// availability changes (oldest first).
func Outages(flips []Flip, serverID string) []Outage {
	var out []Outage
	down := false
	for _, f := range flips {
		if f.ServerID != serverID || f.Unavailable == down {
			continue
		}
		down = f.Unavailable
		if down {
			out = append(out, Outage{From: f.At})
		} else {
			out[len(out)-1].To = f.At
		}
	}
	return out
}

// MonitoredSince is when the integrator's record of a server's
// availability begins: the later of the installation's registration and
// the server's enrollment. It is zero for a server that never reported.
func MonitoredSince(s Server, registeredAt time.Time) time.Time {
	if s.State == ServerPending || s.LastSeen.IsZero() {
		return time.Time{}
	}
	since := s.EnrolledAt
	if since.IsZero() || since.After(s.LastSeen) {
		since = s.LastSeen
	}
	if registeredAt.After(since) {
		since = registeredAt
	}
	return since
}

// Availability is a server's uptime over one window.
type Availability struct {
	// Window is the period asked for (24 h, 30 d, a day).
	Window time.Duration
	// From and To bound the part of the window that was watched; equal
	// when none of it was.
	From, To time.Time
	// Down is the unavailable time within [From, To], and Outages the
	// outages that overlap it, clipped to it.
	Down    time.Duration
	Outages []Outage
}

// Covered is how much of the window was watched.
func (a Availability) Covered() time.Duration { return a.To.Sub(a.From) }

// Known reports whether any of the window was watched.
func (a Availability) Known() bool { return a.To.After(a.From) }

// Partial reports whether only part of the window was watched.
func (a Availability) Partial() bool { return a.Covered() < a.Window }

// Percent is the available share of the watched time, 0 when nothing was
// watched.
func (a Availability) Percent() float64 {
	if !a.Known() {
		return 0
	}
	return 100 * float64(a.Covered()-a.Down) / float64(a.Covered())
}

// FormatPercent writes an uptime the one way keepwatch does: two decimals,
// rounded down, so that some downtime never reads "100.00 %".
func FormatPercent(p float64) string {
	return fmt.Sprintf("%.2f %%", math.Floor(p*100+1e-9)/100)
}

// AvailabilityOver is a server's availability over the window that ends
// at to, counted from since (MonitoredSince; zero: never watched).
func AvailabilityOver(outages []Outage, since, to time.Time, window time.Duration) Availability {
	a := Availability{Window: window, From: to.Add(-window), To: to}
	if since.IsZero() || !since.Before(to) {
		a.From = to
		return a
	}
	if since.After(a.From) {
		a.From = since
	}
	for _, o := range outages {
		end := o.To
		if end.IsZero() || end.After(to) {
			end = to
		}
		from := o.From
		if from.Before(a.From) {
			from = a.From
		}
		if !end.After(from) {
			continue
		}
		a.Down += end.Sub(from)
		clipped := Outage{From: from, To: end}
		if o.To.IsZero() && end.Equal(to) {
			clipped.To = time.Time{} // still going on
		}
		a.Outages = append(a.Outages, clipped)
	}
	return a
}

// Daily returns a server's availability on each of the last days UTC
// calendar days up to now, oldest first; the last is today, so far.
func Daily(outages []Outage, since, now time.Time, days int) []Availability {
	out := make([]Availability, 0, days)
	today := DateOf(now).Time()
	for i := days - 1; i >= 0; i-- {
		start := today.AddDate(0, 0, -i)
		end := start.Add(24 * time.Hour)
		if end.After(now) {
			end = now
		}
		a := AvailabilityOver(outages, since, end, end.Sub(start))
		a.Window = 24 * time.Hour
		out = append(out, a)
	}
	return out
}
