package keepwatch

import (
	"fmt"
	"time"
)

// The incident lifecycle. A condition raised on a server opens an
// incident; one raised again soon after its incident resolved reopens it
// rather than opening another; an event that happens again while its
// incident is unresolved counts on it. A state incident resolves when its
// condition clears, an event incident when a person resolves it or it has
// not recurred for the quiet period. When every server of a site goes
// silent together, one site_unreachable incident speaks for them. These
// rules decide; the store applies their decisions in one transaction, each
// write compare-and-set on the incident's state.

// Lifecycle tunables.
const (
	// DefaultReopenWindow is how soon after its resolution a recurring
	// condition reopens its incident instead of opening a new one.
	DefaultReopenWindow = time.Hour
	// DefaultQuietPeriod resolves event incidents that did not recur.
	DefaultQuietPeriod = 24 * time.Hour
)

// IncidentPolicy holds the lifecycle's tunables; zero values take the
// defaults.
type IncidentPolicy struct {
	ReopenWindow time.Duration
	QuietPeriod  time.Duration
}

func (p IncidentPolicy) reopenWindow() time.Duration {
	if p.ReopenWindow > 0 {
		return p.ReopenWindow
	}
	return DefaultReopenWindow
}

func (p IncidentPolicy) quietPeriod() time.Duration {
	if p.QuietPeriod > 0 {
		return p.QuietPeriod
	}
	return DefaultQuietPeriod
}

// RaiseAction is what a raised condition or event does.
type RaiseAction int

const (
	// RaiseOpen opens a new incident.
	RaiseOpen RaiseAction = iota
	// RaiseRecur counts the raise on the unresolved incident.
	RaiseRecur
	// RaiseReopen reopens the incident resolved within the reopen window.
	RaiseReopen
)

// Raise decides what a condition or event raised at at does, given the
// unresolved incident of the same server, kind and subject (nil if none)
// and the most recently resolved one (nil if none).
func (p IncidentPolicy) Raise(unresolved, lastResolved *Incident, at time.Time) RaiseAction {
	switch {
	case unresolved != nil:
		return RaiseRecur
	case lastResolved != nil && lastResolved.ResolvedAt != nil && !lastResolved.ResolvedAt.Before(at.Add(-p.reopenWindow())):
		return RaiseReopen
	}
	return RaiseOpen
}

// Recur counts one more occurrence at at.
func (in *Incident) Recur(at time.Time) {
	in.Count++
	if at.After(in.LastAt) {
		in.LastAt = at
	}
}

// Reopen makes a resolved incident open again at at, forgetting who
// acknowledged and resolved it.
func (in *Incident) Reopen(at time.Time) {
	in.State, in.LastAt = IncidentOpen, at
	in.Count++
	in.AckedAt, in.AckedBy, in.AckNote = nil, "", ""
	in.ResolvedAt, in.ResolvedBy, in.ResolveNote = nil, "", ""
	in.ParentID = nil
}

// Acknowledge records that a person is on an open incident.
func (in *Incident) Acknowledge(by, note string, at time.Time) error {
	if in.State != IncidentOpen {
		return Errorf(ECONFLICT, "only an open incident can be acknowledged")
	}
	in.State, in.AckedAt, in.AckedBy, in.AckNote = IncidentAcknowledged, &at, by, note
	return nil
}

// Resolve records that a person resolved an incident. Resolving means
// one thing: the problem is gone. An event incident is resolved by a
// person (or by its quiet period); a state incident resolves by itself
// when its condition clears, so while its condition is still reported
// (reported) a person cannot resolve it: it would stay resolved while the
// problem lasts, and the installation would show an error nobody can act
// on. Acknowledge or assign it instead.
func (in *Incident) Resolve(by, note string, at time.Time, reported bool) error {
	if in.State == IncidentResolved {
		return Errorf(ECONFLICT, "the incident is already resolved")
	}
	if reported && !in.Event {
		return Errorf(ECONDITIONACTIVE, "%s", in.ResolvesWhen())
	}
	in.State, in.ResolvedAt, in.ResolvedBy, in.ResolveNote = IncidentResolved, &at, by, note
	return nil
}

// ResolvesWhen says, for people, how an incident comes to be resolved.
func (in *Incident) ResolvesWhen() string {
	switch {
	case in.Event:
		return "an event stays open until someone resolves it, or until it has not recurred for the quiet period"
	case in.Kind == KindServerUnavailable:
		return "the server is still silent: this resolves by itself when it reports again; acknowledge or assign it meanwhile"
	case in.Kind == KindSiteUnreachable:
		return "the site's servers are still silent: this resolves by itself when they report again; acknowledge or assign it meanwhile"
	}
	return "the server still reports this condition: it resolves by itself when the server reports it cleared; acknowledge or assign it meanwhile"
}

// ActorKeepwatch is who resolves what resolves by itself.
const ActorKeepwatch = "keepwatch"

// Clear resolves an unresolved incident whose condition cleared at at. It
// reports whether it changed anything.
func (in *Incident) Clear(at time.Time, note string) bool {
	if in.State == IncidentResolved {
		return false
	}
	in.State, in.ResolvedAt, in.ResolvedBy, in.ResolveNote = IncidentResolved, &at, ActorKeepwatch, note
	return true
}

// QuietSince is the last occurrence before which an unresolved event
// incident resolves by itself at now.
func (p IncidentPolicy) QuietSince(now time.Time) time.Time { return now.Add(-p.quietPeriod()) }

// QuietNote says why an event incident resolved by itself ("no recurrence
// for 24h").
func (p IncidentPolicy) QuietNote() string {
	d := p.quietPeriod().Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case m == 0:
		return fmt.Sprintf("no recurrence for %dh", h)
	case h == 0:
		return fmt.Sprintf("no recurrence for %dm", m)
	}
	return fmt.Sprintf("no recurrence for %dh%dm", h, m)
}

// SiteServers is what the store counts of an installation's monitored
// servers (reporting or unavailable, not revoked) when one goes silent.
type SiteServers struct {
	Total, Down int
	// FirstDown is when the earliest of the Down servers went unavailable.
	FirstDown time.Time
}

// SiteOutage decides whether the servers of an installation went silent
// together: every one of at least two down, the first within window of
// at. One server alone cannot tell a dead server from a dead link.
func SiteOutage(s SiteServers, at time.Time, window time.Duration) bool {
	return s.Total >= 2 && s.Down == s.Total && at.Sub(s.FirstDown) <= window
}

// SiteOutageNote explains a site_unreachable incident when it opens.
func SiteOutageNote(total int, window time.Duration) string {
	within := window.Round(time.Second).String()
	if window >= time.Minute && window%time.Minute == 0 {
		within = fmt.Sprintf("%d min", int(window.Minutes()))
	}
	return fmt.Sprintf("all %d servers stopped reporting within %s: the site's Internet link, or its power, is the likely cause", total, within)
}

// ConnectionLost decides, when a server that was declared unavailable
// reports again at back, whether its report shows it was running all
// along: the agent recorded it (recordedAt) at least an interval before it
// arrived, so it sat in the agent's spool while the link was down. It
// returns the annotation for the outage's incident.
func ConnectionLost(lastSeen, back, recordedAt time.Time, interval time.Duration) (string, bool) {
	if recordedAt.IsZero() || !recordedAt.Before(back.Add(-interval)) {
		return "", false
	}
	return fmt.Sprintf("server was running; connection lost from %s to %s", FormatTime(lastSeen), FormatTime(back)), true
}
