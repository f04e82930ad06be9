package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// uptimeWindows are the periods the installation page reports uptime for.
var uptimeWindows = []struct {
	Label string
	D     time.Duration
}{{"24 h", 24 * time.Hour}, {"30 d", 30 * 24 * time.Hour}, {"365 d", 365 * 24 * time.Hour}}

// uptime is a server's availability over one window.
type uptime struct {
	Label   string
	Percent float64
	Known   bool // false while the server never reported
}

// serverRow is one recording server on the installation page.
type serverRow struct {
	keepwatch.Server
	Uptime []uptime
}

type installationData struct {
	View        keepwatch.InstallationView
	State       string
	Servers     []serverRow
	Incidents   []keepwatch.Incident
	Timeline    []keepwatch.TimelineEntry
	Maintenance []keepwatch.MaintenanceWindow
	Active      *keepwatch.MaintenanceWindow
	Durations   []durationChoice
	Today       keepwatch.Date
	LiveHref    string
}

type durationChoice struct {
	Value, Label string
}

var maintenanceDurations = []durationChoice{
	{"30m", "30 minutes"}, {"1h", "1 hour"}, {"2h", "2 hours"}, {"4h", "4 hours"}, {"8h", "8 hours"}, {"24h", "1 day"}, {"72h", "3 days"}, {"168h", "1 week"},
}

// slcParam reads the SLC of a path; anything malformed is simply not one
// of the integrator's installations.
func slcParam(r *http.Request) (string, error) {
	slc, err := keepwatch.NormalizeSLC(r.PathValue("slc"))
	if err != nil {
		return "", keepwatch.Errorf(keepwatch.ENOTFOUND, "no such installation in your account")
	}
	return slc, nil
}

func (h *Handler) installation(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	p, ctx, now := rq.principal(), r.Context(), h.now()
	view, err := h.Store.Installation(ctx, p.IntegratorID, slc, h.now())
	if err != nil {
		return err
	}
	servers, err := h.Store.Servers(ctx, p.IntegratorID, slc)
	if err != nil {
		return err
	}
	flips, err := h.Store.AvailabilityHistory(ctx, p.IntegratorID, slc)
	if err != nil {
		return err
	}
	incidents, err := h.Store.Incidents(ctx, p.IntegratorID, "", 500)
	if err != nil {
		return err
	}
	timeline, err := h.Store.Timeline(ctx, p.IntegratorID, slc, 100)
	if err != nil {
		return err
	}
	windows, err := h.Store.Maintenance(ctx, p.IntegratorID, slc, now)
	if err != nil {
		return err
	}
	d := installationData{View: view, Timeline: timeline, Maintenance: windows, Durations: maintenanceDurations, Today: h.today(),
		LiveHref: "/installations/" + slc + "?partial=1"}
	d.Active, d.State = view.Maintenance, string(view.Status)
	for _, n := range incidents {
		if n.SLC == slc {
			d.Incidents = append(d.Incidents, n)
		}
	}
	for _, s := range servers {
		sr := serverRow{Server: s}
		for _, win := range uptimeWindows {
			pct, known := uptimeOf(flips, s, now, win.D)
			sr.Uptime = append(sr.Uptime, uptime{Label: win.Label, Percent: pct, Known: known})
		}
		d.Servers = append(d.Servers, sr)
	}
	pg := h.newPage(r, rq, view.Customer, "overview", d)
	pg.Partial = r.URL.Query().Get("partial") != ""
	return h.render(w, http.StatusOK, "installation", pg)
}

// uptimeOf computes the share of the window [now-d, now] that a server was
// available, from its availability changes (oldest first). Time before the
// server first reported does not count; known is false if it never did.
func uptimeOf(flips []keepwatch.Flip, s keepwatch.Server, now time.Time, d time.Duration) (pct float64, known bool) {
	start := now.Add(-d)
	first := s.EnrolledAt
	if s.State == keepwatch.ServerPending || s.LastSeen.IsZero() {
		return 0, false
	}
	if first.IsZero() || first.After(s.LastSeen) {
		first = s.LastSeen
	}
	if first.After(start) {
		start = first
	}
	total := now.Sub(start)
	if total <= 0 {
		return 100, true
	}
	var down time.Duration
	var downSince time.Time
	isDown := false
	for _, f := range flips {
		if f.ServerID != s.ID {
			continue
		}
		switch {
		case f.Unavailable && !isDown:
			isDown, downSince = true, f.At
		case !f.Unavailable && isDown:
			isDown = false
			down += overlap(downSince, f.At, start, now)
		}
	}
	if isDown {
		down += overlap(downSince, now, start, now)
	}
	return 100 * float64(total-down) / float64(total), true
}

// overlap is the length of [a, b] within [lo, hi].
func overlap(a, b, lo, hi time.Time) time.Duration {
	if a.Before(lo) {
		a = lo
	}
	if b.After(hi) {
		b = hi
	}
	if !b.After(a) {
		return 0
	}
	return b.Sub(a)
}

func (h *Handler) setMaintenance(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	now := h.now()
	dur, err := time.ParseDuration(r.PostFormValue("duration"))
	if err != nil {
		return keepwatch.Errorf(keepwatch.EINVALID, "choose a duration between one minute and 31 days")
	}
	var start time.Time
	if s := strings.TrimSpace(r.PostFormValue("start")); s != "" {
		// A datetime-local field has no zone; the form says it is UTC.
		start, err = time.ParseInLocation("2006-01-02T15:04", s, time.UTC)
		if err != nil {
			return keepwatch.Errorf(keepwatch.EINVALID, "the start must be a date and time, like 2026-12-01T22:00")
		}
	} else {
		start = now
	}
	p := rq.principal()
	m, err := keepwatch.NewMaintenance(slc, start, start.Add(dur), r.PostFormValue("reason"), p.Actor, now)
	if err != nil {
		return err
	}
	if m, err = h.Store.SetMaintenance(r.Context(), p.IntegratorID, m); err != nil {
		return err
	}
	h.audit(r, rq, "maintenance.set", slc, m.Start.Format(time.RFC3339)+" – "+m.End.Format(time.RFC3339)+reasonSuffix(m.Reason))
	redirectDone(w, r, "/installations/"+slc, "maintenance")
	return nil
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func (h *Handler) endMaintenance(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	p := rq.principal()
	n, err := h.Store.EndMaintenance(r.Context(), p.IntegratorID, slc, h.now())
	if err != nil {
		return err
	}
	h.audit(r, rq, "maintenance.end", slc, strconv.Itoa(n)+" window(s)")
	redirectDone(w, r, "/installations/"+slc, "maintenanceEnd")
	return nil
}
