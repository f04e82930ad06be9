package keepwatch

import (
	"fmt"
	"time"
)

// Flood caps. A recording server that reports more than a person can
// read — a broken agent looping over its cameras, a VMS logging the same
// failure every second, a stolen report key — must not bury its
// integrator in incidents and notifications. Past its caps a server's
// raises are held back: its conditions are still shown and its events
// still recorded, but they open no incident (and so notify nobody), and
// one flood warning speaks for them all.
const (
	// DefaultMaxOpenIncidents is how many unresolved incidents one server
	// may have before its new conditions and events open no more.
	DefaultMaxOpenIncidents = 50
	// DefaultMaxEventsPerMinute is how many events a minute (by reception)
	// one server may have counted on incidents.
	DefaultMaxEventsPerMinute = 60
	// DefaultFloodCalm is how long a server must stay under its caps
	// before its flood warning clears by itself.
	DefaultFloodCalm = 15 * time.Minute
)

// FloodPolicy holds the flood caps; zero values take the defaults.
type FloodPolicy struct {
	MaxOpenIncidents   int
	MaxEventsPerMinute int
	Calm               time.Duration
}

func (p FloodPolicy) maxOpen() int {
	if p.MaxOpenIncidents > 0 {
		return p.MaxOpenIncidents
	}
	return DefaultMaxOpenIncidents
}

func (p FloodPolicy) maxEvents() int {
	if p.MaxEventsPerMinute > 0 {
		return p.MaxEventsPerMinute
	}
	return DefaultMaxEventsPerMinute
}

// CalmPeriod is how long a flood must be quiet before it clears.
func (p FloodPolicy) CalmPeriod() time.Duration {
	if p.Calm > 0 {
		return p.Calm
	}
	return DefaultFloodCalm
}

// EventRate is the events-per-minute cap as a token bucket's rate per
// second and burst.
func (p FloodPolicy) EventRate() (perSecond float64, burst int) {
	return float64(p.maxEvents()) / 60, p.maxEvents()
}

// FloodGate admits the incidents one report would open against its
// server's open-incidents cap.
type FloodGate struct {
	open, maxOpen int
	// Held counts the raises held back: conditions and events that opened
	// no incident, and events over the events-per-minute cap.
	Held int
}

// Gate starts admitting a report's raises for a server that has open
// unresolved incidents, and held events over its events-per-minute cap.
func (p FloodPolicy) Gate(open, heldEvents int) *FloodGate {
	return &FloodGate{open: open, maxOpen: p.maxOpen(), Held: heldEvents}
}

// Open admits one more unresolved incident (a new or a reopened one):
// false, and held, at the open-incidents cap.
func (g *FloodGate) Open() bool {
	if g.open >= g.maxOpen {
		g.Held++
		return false
	}
	g.open++
	return true
}

// Calmed reports whether a flood whose caps were last exceeded at last may
// clear at now: nothing was held back for the calm period and the server
// is below its open-incidents cap again.
func (p FloodPolicy) Calmed(last time.Time, open int, now time.Time) bool {
	return now.Sub(last) >= p.CalmPeriod() && open < p.maxOpen()
}

// FloodCondition is the one warning that speaks for what a server's
// report had held back at at.
func (p FloodPolicy) FloodCondition(held int, at time.Time) Condition {
	return Condition{Kind: KindFlood, Severity: SeverityWarning, Since: at,
		Message: fmt.Sprintf("over its caps (%d open incidents, %d events a minute): its last report at %s had %d conditions and events recorded without an incident or a notification",
			p.maxOpen(), p.maxEvents(), at.UTC().Format("15:04:05 UTC"), held)}
}
