package sim

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"keepwatch"
)

// Stats is a snapshot of a fleet.
type Stats struct {
	Servers  int // in the fleet
	Enrolled int
	// Online servers had a report acknowledged within the last three
	// intervals.
	Online                           int
	Accepted, Heartbeats, StatusSent uint64
	Refused                          map[string]Refused // by code
	// Faults counts the faults under way by kind (FaultArchive counts
	// every archive event so far, those being instantaneous).
	Faults map[FaultKind]int
	// ServersOffline are the servers of the sites offline (counted in
	// Faults[FaultSiteOffline]); Spooled the reports they hold.
	ServersOffline, Spooled int
}

// Unexpected returns the number of reports refused other than on purpose.
func (s Stats) Unexpected() uint64 {
	var n uint64
	for _, r := range s.Refused {
		n += r.Unexpected
	}
	return n
}

// Stats takes a snapshot. It walks the fleet, so it is for a summary
// once a second, not for hot paths.
func (f *Fleet) Stats() Stats {
	st := Stats{
		Servers: f.total, Enrolled: int(f.enrolled.Load()),
		Accepted: f.accepted.Load(), Heartbeats: f.heartbeats.Load(), StatusSent: f.statuses.Load(),
		Refused: map[string]Refused{}, Faults: map[FaultKind]int{},
	}
	f.refusedMu.Lock()
	for c, r := range f.refused {
		st.Refused[c] = *r
	}
	f.refusedMu.Unlock()
	now := time.Now()
	for _, site := range f.sites {
		if off, _ := site.offline(now); off {
			st.Faults[FaultSiteOffline]++
			st.ServersOffline += len(site.servers)
		}
		for _, s := range site.servers {
			s.mu.Lock()
			if !s.lastAck.IsZero() && now.Sub(s.lastAck) <= 3*s.period() {
				st.Online++
			}
			if s.h != nil {
				s.h.activeFaults(st.Faults)
			}
			st.Spooled += len(s.spool)
			s.mu.Unlock()
		}
	}
	st.Faults[FaultArchive] = int(f.archiveEvents.Load())
	return st
}

// Line formats the snapshot as the one-line summary; rate is the
// accepted reports per second to show.
func (s Stats) Line(rate float64) string {
	var b strings.Builder
	if s.Enrolled < s.Servers {
		fmt.Fprintf(&b, "enrolled %d/%d", s.Enrolled, s.Servers)
	} else {
		fmt.Fprintf(&b, "servers %d", s.Servers)
	}
	fmt.Fprintf(&b, " · online %d · %.0f reports/s · refused ", s.Online, rate)
	codes := slices.Sorted(maps.Keys(s.Refused))
	var ok, bad []string
	for _, c := range codes {
		if r := s.Refused[c]; r.Injected > 0 {
			ok = append(ok, fmt.Sprintf("%s %d", c, r.Injected))
		}
		if r := s.Refused[c]; r.Unexpected > 0 {
			bad = append(bad, fmt.Sprintf("%s %d", c, r.Unexpected))
		}
	}
	switch {
	case len(ok) == 0 && len(bad) == 0:
		b.WriteString("none")
	case len(ok) > 0:
		fmt.Fprintf(&b, "%s (injected)", strings.Join(ok, ", "))
	}
	if len(bad) > 0 {
		if len(ok) > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " UNEXPECTED %s", strings.Join(bad, ", "))
	}
	fmt.Fprintf(&b, " · faults: %d drives, %d cameras, %d media DB, %d crashed, %d sites offline (%d servers, %d reports held) · %d archive events",
		s.Faults[FaultDrive], s.Faults[FaultCamera], s.Faults[FaultMediaDB], s.Faults[FaultCrash],
		s.Faults[FaultSiteOffline], s.ServersOffline, s.Spooled, s.Faults[FaultArchive])
	return b.String()
}

// PrintSummary writes the live summary to w until ctx ends: refreshed in
// place every second on a terminal, a new line every few seconds
// otherwise (a log file, a pipe).
func (f *Fleet) PrintSummary(ctx context.Context, w io.Writer, tty bool) {
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := f.accepted.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprint(w, "\n")
			}
			return
		case <-t.C:
		}
		st := f.Stats()
		now := time.Now()
		rate := float64(st.Accepted-last) / now.Sub(lastAt).Seconds()
		last, lastAt = st.Accepted, now
		if tty {
			fmt.Fprintf(w, "\r%s\x1b[K", st.Line(rate))
		} else {
			fmt.Fprintln(w, st.Line(rate))
		}
	}
}

// Check is the comparison of what the fleet knows keepwatch acknowledged
// with what keepwatch shows the integrator.
type Check struct {
	Servers     int // servers compared
	Conditions  int // active state conditions shown as reported
	Events      int // event incidents shown as reported
	Unavailable int // silent servers shown unavailable
	// Problems lists the differences; empty when keepwatch shows exactly
	// what the fleet did.
	Problems []string
}

// Check compares the fleet's record with views, the integrator's
// overview (store.Installations, or GET /api/v1/installations?filter=all)
// taken at now. Call it once Run has returned, so that no report is on
// its way. For every server that reported: its active conditions must be
// exactly those of its last acknowledged status report plus the events it
// delivered (their incidents stay open until someone resolves them), and
// that report must hold the conditions the server really has unless they
// changed since or the server cannot report (crashed, site offline); a
// server silent for longer than three intervals and a half (the tolerance
// keepwatch may add) must be unavailable, one silent for less than three
// must not. Servers near the boundary are not judged.
func (f *Fleet) Check(views []keepwatch.InstallationView, now time.Time) Check {
	var c Check
	bySLC := make(map[string]keepwatch.InstallationView, len(views))
	for _, v := range views {
		bySLC[v.SLC] = v
	}
	for _, site := range f.sites {
		v, ok := bySLC[site.inst.SLC]
		if !ok {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: not in the overview", site.inst.SLC))
			continue
		}
		shown := map[string]map[string]keepwatch.Condition{}
		unavailable := map[string]bool{}
		for _, cd := range v.Conditions {
			switch {
			case cd.Kind == keepwatch.KindServerUnavailable:
				unavailable[cd.Server] = true
			case cd.Kind == keepwatch.KindStorageForecast || cd.Kind == keepwatch.KindRetentionShort:
				// keepwatch's own verdicts on the drives' samples.
			case cd.Server != "" && cd.Kind != keepwatch.KindSiteUnreachable:
				if shown[cd.Server] == nil {
					shown[cd.Server] = map[string]keepwatch.Condition{}
				}
				shown[cd.Server][cd.Key()] = cd
			}
		}
		for _, s := range site.servers {
			s.mu.Lock()
			c.check(site, s, shown[s.creds.Name], unavailable[s.creds.Name], now, f.runStart)
			s.mu.Unlock()
		}
	}
	return c
}

// check judges one server; the caller holds s.mu.
func (c *Check) check(site *site, s *server, shown map[string]keepwatch.Condition, unavailable bool, now, runStart time.Time) {
	if s.lastAck.IsZero() || s.dormant == dormantWithdrawn || s.dormant == dormantSilent {
		return
	}
	c.Servers++
	name := site.inst.SLC + " " + s.creds.Name
	want := map[string]Item{}
	maps.Copy(want, s.acked)
	maps.Copy(want, s.ackedEvents)
	for k, it := range want {
		if _, ok := shown[k]; !ok {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %s reported but not shown", name, it))
			continue
		}
		if _, ev := s.ackedEvents[k]; ev {
			c.Events++
		} else {
			c.Conditions++
		}
	}
	extra := []string{}
	for k, cd := range shown {
		if _, ok := want[k]; ok {
			continue
		}
		if eventKinds[cd.Kind] && cd.Since.Before(runStart) {
			continue // delivered by an earlier run, still open
		}
		extra = append(extra, Item{cd.Kind, cd.Subject}.String())
	}
	sort.Strings(extra)
	for _, it := range extra {
		c.Problems = append(c.Problems, fmt.Sprintf("%s: %s shown but cleared or never reported", name, it))
	}
	// The fleet itself must have reported what it suffers: a server that
	// is up, online and has nothing held back has no change since its last
	// acknowledged report, or its report of it is missing.
	if off, _ := site.offline(now); !off && s.dormant == "" && !s.h.down && len(s.spool) == 0 && !s.h.changed.After(s.lastAck) {
		for k, cd := range s.h.conds {
			if _, ok := s.acked[k]; !ok {
				c.Problems = append(c.Problems, fmt.Sprintf("%s: %s active but never reported", name, Item{cd.kind, cd.subject}))
			}
		}
		for k, it := range s.acked {
			if _, ok := s.h.conds[k]; !ok {
				c.Problems = append(c.Problems, fmt.Sprintf("%s: %s cleared but not reported so", name, it))
			}
		}
	}
	if s.dormant == dormantPaused || site.isPaused() {
		return // paused installations are never unavailable
	}
	period := s.dictated
	if period <= 0 {
		period = s.period()
	}
	silent := now.Sub(s.lastAck)
	switch {
	case silent > 3*period+period/2+2*time.Second:
		if unavailable {
			c.Unavailable++
		} else {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: silent for %s but not unavailable", name, silent.Round(time.Millisecond)))
		}
	case silent < 3*period-time.Second && unavailable:
		c.Problems = append(c.Problems, fmt.Sprintf("%s: unavailable though it reported %s ago", name, silent.Round(time.Millisecond)))
	}
}

// eventKinds are the kinds the fleet sends as events.
var eventKinds = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range archiveKind {
		m[k] = true
	}
	return m
}()

// countList formats counts by name: "unauthorized 3, network 1".
func countList(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
