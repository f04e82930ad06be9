package web

import (
	"net/http"
	"strings"
	"time"

	"keepwatch"
)

// uptimeWindows are the periods the installation page reports uptime for.
var uptimeWindows = []struct {
	Label string
	D     time.Duration
}{{"24 h", 24 * time.Hour}, {"30 d", 30 * 24 * time.Hour}, {"365 d", 365 * 24 * time.Hour}}

// barDays is how many days the uptime bar of a server shows.
const barDays = 90

// uptime is a server's availability over one window, as shown.
type uptime struct {
	Label string
	keepwatch.Availability
}

// serverRow is one recording server on the installation page.
type serverRow struct {
	keepwatch.Server
	Uptime []uptime
	Bar    uptimeBar
}

type installationData struct {
	View        keepwatch.InstallationView
	State       string
	Servers     []serverRow
	Incidents   []incidentGroup
	Timeline    []keepwatch.TimelineEntry
	Maintenance []keepwatch.MaintenanceWindow
	Active      *keepwatch.MaintenanceWindow
	Durations   []durationChoice
	Today       keepwatch.Date
	Registered  time.Time
	LiveHref    string
	Drives      drivesData
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
	return h.renderInstallation(w, r, rq, http.StatusOK, formState{})
}

// renderInstallation shows an installation's page; form is a refused
// maintenance form to show again.
func (h *Handler) renderInstallation(w http.ResponseWriter, r *http.Request, rq *request, status int, form formState) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	p, ctx, now := rq.principal(), r.Context(), h.now()
	view, err := h.Store.Installation(ctx, p.IntegratorID, slc, now)
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
	registered, err := h.Store.RegisteredAt(ctx, p.IntegratorID, slc)
	if err != nil {
		return err
	}
	incidents, err := h.Store.Incidents(ctx, p.IntegratorID, "", incidentLimit)
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
		Registered: registered, LiveHref: "/installations/" + slc + "?partial=1"}
	rng, _ := chartSpan(r.URL.Query().Get("range"))
	if rng != chartRanges[0].Key {
		d.LiveHref += "&range=" + rng
	}
	if d.Drives, err = h.loadDrives(ctx, p.IntegratorID, slc, rng, now); err != nil {
		return err
	}
	d.Active, d.State = view.Maintenance, string(view.Status)
	var mine []keepwatch.Incident
	for _, n := range incidents {
		if n.SLC == slc {
			mine = append(mine, n)
		}
	}
	rows, err := h.incidentRows(ctx, p.IntegratorID, mine, nil)
	if err != nil {
		return err
	}
	d.Incidents = groupIncidents(rows, false)
	for _, s := range servers {
		sr := serverRow{Server: s}
		outages := keepwatch.Outages(flips, s.ID)
		since := keepwatch.MonitoredSince(s, registered)
		for _, win := range uptimeWindows {
			sr.Uptime = append(sr.Uptime, uptime{Label: win.Label, Availability: keepwatch.AvailabilityOver(outages, since, now, win.D)})
		}
		sr.Bar = newUptimeBar(keepwatch.Daily(outages, since, now, barDays), keepwatch.AvailabilityOver(outages, since, now, barDays*24*time.Hour))
		d.Servers = append(d.Servers, sr)
	}
	pg := h.newPage(r, rq, view.Customer, "overview", d)
	pg.Partial = r.URL.Query().Get("partial") != ""
	pg.Form = form
	return h.render(w, status, "installation", pg)
}

// maintenanceStart reads the maintenance form's start: "now", or a date
// and time in UTC.
func maintenanceStart(r *http.Request, now time.Time) (time.Time, error) {
	if r.PostFormValue("start") != "at" {
		return now, nil
	}
	at := strings.TrimSpace(r.PostFormValue("start_at"))
	if at == "" {
		return time.Time{}, keepwatch.Invalid("start_at", "give the start as a date and time in UTC, like %s", now.Add(time.Hour).Format("2006-01-02 15:04"))
	}
	t, err := keepwatch.ParseTime(at)
	if err != nil {
		return time.Time{}, keepwatch.Invalid("start_at", "%s (UTC)", err.Error())
	}
	return t, nil
}

func (h *Handler) setMaintenance(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	now := h.now()
	refuse := func(field string, err error) error {
		if keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			return err
		}
		if f := keepwatch.FieldOf(err); f == "start" {
			err = keepwatch.Invalid("start_at", "%s", keepwatch.ErrorMessage(err))
		} else if f == "end" {
			err = keepwatch.Invalid("duration", "%s", keepwatch.ErrorMessage(err))
		}
		return h.renderInstallation(w, r, rq, statusOfRefusal(err), refusedForm(r, "maintenance", field, err))
	}
	dur, err := time.ParseDuration(r.PostFormValue("duration"))
	if err != nil {
		return refuse("duration", keepwatch.Errorf(keepwatch.EINVALID, "choose how long the maintenance lasts"))
	}
	start, err := maintenanceStart(r, now)
	if err != nil {
		return refuse("start_at", err)
	}
	p := rq.principal()
	m, err := keepwatch.NewMaintenance(slc, start, start.Add(dur), r.PostFormValue("reason"), p.Actor, now)
	if err != nil {
		return refuse("reason", err)
	}
	if m, err = h.Store.SetMaintenance(r.Context(), p.IntegratorID, m); err != nil {
		return err
	}
	h.audit(r, rq, "maintenance.set", slc, keepwatch.FormatTime(m.Start)+" – "+keepwatch.FormatTime(m.End)+reasonSuffix(m.Reason))
	done := "maintenance"
	if m.Scheduled(now) {
		done = "maintenanceScheduled"
	}
	redirectTo(w, r, "/installations/"+slc, done, "maintenance")
	return nil
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// stopMaintenance cancels a scheduled window or ends the running one.
func (h *Handler) stopMaintenance(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	id, err := pathID(r, "maintenance window")
	if err != nil {
		return err
	}
	p := rq.principal()
	m, cancelled, err := h.Store.StopMaintenance(r.Context(), p.IntegratorID, slc, id, h.now())
	if err != nil {
		return err
	}
	what, done := "ended", "maintenanceEnd"
	if cancelled {
		what, done = "cancelled", "maintenanceCancelled"
	}
	h.audit(r, rq, "maintenance.stop", slc, what+": "+keepwatch.FormatTime(m.Start)+" – "+keepwatch.FormatTime(m.End)+reasonSuffix(m.Reason))
	redirectTo(w, r, "/installations/"+slc, done, "maintenance")
	return nil
}

// uptimeBar is a server's availability per day, drawn as a row of cells.
type uptimeBar struct {
	Days    []uptimeDay
	Overall keepwatch.Availability
}

// uptimeDay is one cell: its level (a CSS class) and what its tooltip
// says.
type uptimeDay struct {
	Level, Title string
}

func newUptimeBar(days []keepwatch.Availability, overall keepwatch.Availability) uptimeBar {
	b := uptimeBar{Overall: overall}
	for _, d := range days {
		date := d.From.UTC().Format(time.DateOnly)
		if !d.Known() {
			date = d.To.UTC().Format(time.DateOnly)
			b.Days = append(b.Days, uptimeDay{Level: "none", Title: date + ": not monitored"})
			continue
		}
		p := d.Percent()
		level := "ok"
		switch {
		case p < 90:
			level = "down"
		case p < 99:
			level = "major"
		case p < 100:
			level = "minor"
		}
		title := date + ": " + keepwatch.FormatPercent(p)
		if d.Partial() {
			title += " of " + span(d.Covered()) + " monitored"
		}
		for _, o := range d.Outages {
			title += "\nunavailable " + o.From.UTC().Format("15:04") + "–"
			if o.To.IsZero() {
				title += "now"
			} else {
				title += o.To.UTC().Format("15:04")
			}
			title += " UTC"
		}
		b.Days = append(b.Days, uptimeDay{Level: level, Title: title})
	}
	return b
}
