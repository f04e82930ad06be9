package web

import (
	"html/template"
	"net/http"
	"strconv"
	"time"

	"keepwatch"
)

// The incident page: one incident with its server and condition, its
// history, what was sent about it, and what can be done with it.

type incidentData struct {
	incidentRow
	// Condition is the condition as its server reports it now (state
	// incidents still reported).
	Condition *keepwatch.Condition
	// Reported: a state incident whose condition is still reported; only
	// keepwatch resolves it, when the condition clears.
	Reported bool
	Why      string // how the incident comes to be resolved
	// Servers are the server outages a site outage speaks for.
	Servers       []incidentRow
	Parent        *keepwatch.Incident
	History       []keepwatch.Transition
	Notifications []notificationRow
	Users         []keepwatch.User
	Maintenance   *keepwatch.MaintenanceWindow
	Back          string
}

// notificationRow is one notification about the incident, readably.
type notificationRow struct {
	keepwatch.Notification
	What, Channel, ChannelType string
	Outcome                    template.HTML
}

var notificationWhat = map[keepwatch.NotificationType]string{
	keepwatch.NotifyOpened: "Opening", keepwatch.NotifyResolved: "Resolution", keepwatch.NotifyReminder: "Reminder",
	keepwatch.NotifyDigest: "Daily digest", keepwatch.NotifyTest: "Test", keepwatch.NotifyCarePlus: "Care Plus reminder",
}

// outcome says what became of a notification, for people; its times
// are <time> elements that never break across lines.
func outcome(n keepwatch.Notification) template.HTML {
	at := func(t time.Time) string {
		return `<time class="at" datetime="` + t.UTC().Format(time.RFC3339) + `">` + keepwatch.FormatTime(t) + `</time>`
	}
	why := template.HTMLEscapeString(n.LastError)
	attempts := strconv.Itoa(n.Attempts) + plural(n.Attempts, " attempt", " attempts")
	var s string
	switch n.State {
	case keepwatch.NotificationSent:
		s = "at " + at(n.SentAt)
	case keepwatch.NotificationPending:
		switch {
		case n.Attempts > 0:
			s = "retrying after " + attempts + " (" + why + "), next at " + at(n.NotBefore)
		case n.LastError != "":
			s = "waiting until " + at(n.NotBefore) + ": " + why
		default:
			s = "due " + at(n.NotBefore)
		}
	case keepwatch.NotificationSuppressed:
		s = "not sent: " + why
	case keepwatch.NotificationFailed:
		s = "failed after " + attempts + ": " + why
	case keepwatch.NotificationCancelled:
		s = "cancelled"
	default:
		s = template.HTMLEscapeString(string(n.State))
	}
	return template.HTML(s)
}

func (h *Handler) incident(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	return h.renderIncident(w, r, rq, id, http.StatusOK, formState{})
}

// renderIncident shows an incident's page; form is a refused action to
// show again beside its form.
func (h *Handler) renderIncident(w http.ResponseWriter, r *http.Request, rq *request, id int64, status int, form formState) error {
	p, ctx, now := rq.principal(), r.Context(), h.now()
	n, err := h.Store.Incident(ctx, p.IntegratorID, id)
	if err != nil {
		return err
	}
	maint, err := h.Store.ActiveMaintenance(ctx, p.IntegratorID, now)
	if err != nil {
		return err
	}
	rows, err := h.incidentRows(ctx, p.IntegratorID, []keepwatch.Incident{n}, maint)
	if err != nil {
		return err
	}
	d := incidentData{incidentRow: rows[0], Back: "/incidents/" + strconv.FormatInt(id, 10), Why: n.ResolvesWhen()}
	if m, ok := maint[n.SLC]; ok {
		d.Maintenance = &m
	}
	if d.Reported, err = h.Store.IncidentReported(ctx, p.IntegratorID, id); err != nil {
		return err
	}
	if d.Reported && n.Kind != keepwatch.KindServerUnavailable && n.Kind != keepwatch.KindSiteUnreachable {
		servers, err := h.Store.Servers(ctx, p.IntegratorID, n.SLC)
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.ID != n.ServerID {
				continue
			}
			for i, c := range s.Conditions {
				if c.Kind == n.Kind && c.Subject == n.Subject {
					d.Condition = &s.Conditions[i]
				}
			}
		}
	}
	if n.Kind == keepwatch.KindSiteUnreachable || n.ParentID != nil {
		if err := h.siteOf(r, rq, &d); err != nil {
			return err
		}
	}
	if d.History, err = h.Store.IncidentHistory(ctx, p.IntegratorID, id); err != nil {
		return err
	}
	sent, err := h.Store.IncidentNotifications(ctx, p.IntegratorID, id)
	if err != nil {
		return err
	}
	channels, err := h.Store.Channels(ctx, p.IntegratorID)
	if err != nil {
		return err
	}
	names := map[int64]keepwatch.Channel{}
	for _, c := range channels {
		names[c.ID] = c
	}
	for _, s := range sent {
		c := names[s.ChannelID]
		row := notificationRow{Notification: s, What: notificationWhat[s.Type], Channel: c.Name, ChannelType: string(c.Type), Outcome: outcome(s)}
		if row.Channel == "" {
			row.Channel = "a deleted channel"
		}
		if row.What == "" {
			row.What = string(s.Type)
		}
		d.Notifications = append(d.Notifications, row)
	}
	if p.Role.Allows(keepwatch.RoleTechnician) {
		if d.Users, err = h.Store.Users(ctx, p.IntegratorID); err != nil {
			return err
		}
	}
	title := kindLabel(n.Kind)
	if n.Server != "" {
		title += " on " + n.Server
	}
	pg := h.newPage(r, rq, title+" · "+n.Customer, "incidents", d)
	pg.Form = form
	return h.render(w, status, "incident", pg)
}

// siteOf fills in the site outage an incident belongs to, or the server
// outages it speaks for.
func (h *Handler) siteOf(r *http.Request, rq *request, d *incidentData) error {
	p, ctx := rq.principal(), r.Context()
	if d.ParentID != nil {
		parent, err := h.Store.Incident(ctx, p.IntegratorID, *d.ParentID)
		if err == nil {
			d.Parent = &parent
		} else if keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
			return err
		}
	}
	if d.Kind != keepwatch.KindSiteUnreachable {
		return nil
	}
	var children []keepwatch.Incident
	for _, state := range []keepwatch.IncidentState{"", keepwatch.IncidentResolved} {
		list, err := h.Store.Incidents(ctx, p.IntegratorID, state, incidentLimit)
		if err != nil {
			return err
		}
		for _, n := range list {
			if n.ParentID != nil && *n.ParentID == d.ID {
				children = append(children, n)
			}
		}
	}
	rows, err := h.incidentRows(ctx, p.IntegratorID, children, nil)
	d.Servers = rows
	return err
}
