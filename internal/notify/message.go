package notify

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"keepwatch"
)

// Message is one notification rendered for every channel type.
type Message struct {
	ID      int64                      // the delivery id, stable across retries
	Type    keepwatch.NotificationType // opened, resolved, reminder, care_plus_ending, digest, test
	Subject string
	Text    string
	HTML    string
	URL     string
	// Incident is what an incident message (opened, reminder,
	// acknowledged, resolved) is about, nil for the others; IncidentURL
	// links to its page and Headline says in one line what happened.
	Incident    *keepwatch.IncidentContext
	IncidentURL string
	Headline    string
	// Installation is what a Care Plus warning is about.
	Installation *keepwatch.Installation
	// Body is the webhook JSON object (without id/type/sent_at, added at
	// send time).
	Body map[string]any
}

// compose renders a due notification, or says why it must not be sent
// now (suppressed for good, or held until a time) — decided now, not when
// it was enqueued.
func (n *Notifier) compose(ctx context.Context, d keepwatch.Notification, now time.Time) (Message, keepwatch.Hold, error) {
	m, why, err := n.render(ctx, d, now)
	if why.Suppress == "" && why.Until.IsZero() && err == nil {
		m.HTML = renderHTML(m)
	}
	return m, why, err
}

func (n *Notifier) render(ctx context.Context, d keepwatch.Notification, now time.Time) (Message, keepwatch.Hold, error) {
	m := Message{ID: d.ID, Type: d.Type, Body: map[string]any{}}
	suppress := func(why string) (Message, keepwatch.Hold, error) { return m, keepwatch.Hold{Suppress: why}, nil }
	switch d.Type {
	case TypeOpened, TypeReminder, TypeResolved, TypeAcknowledged:
		ic, err := n.cfg.Store.IncidentForNotify(ctx, d.IncidentID)
		if err != nil {
			return m, keepwatch.Hold{}, err
		}
		if ic.IntegratorID != d.IntegratorID {
			return suppress("the installation is no longer registered to this account")
		}
		if d.Type != TypeResolved && d.Type != TypeAcknowledged {
			if hold, err := n.holdOpening(ctx, d, ic, now); hold.Suppress != "" || !hold.Until.IsZero() || err != nil {
				return m, hold, err
			}
		}
		n.incidentMessage(&m, d.Type, ic)
	case TypeCarePlus:
		in, err := n.cfg.Store.InstallationByID(ctx, d.IntegratorID, d.InstallationID)
		if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
			return suppress("the installation is no longer registered to this account")
		}
		if err != nil {
			return m, keepwatch.Hold{}, err
		}
		days := int(in.CarePlusUntil.Time().Sub(keepwatch.DateOf(now).Time()).Hours() / 24)
		if days < 0 {
			return suppress("Care Plus already ended")
		}
		m.Installation = &in
		m.URL = n.link(in.SLC)
		m.Subject = fmt.Sprintf("[keepwatch] Care Plus of %s ends in %d days (%s)", in.Customer, days, in.CarePlusUntil)
		m.Text = fmt.Sprintf("The Care Plus subscription of %s (SLC %s, %s) ends on %s, in %d days.\n"+
			"After that date its recording servers may no longer report and monitoring pauses.\n\n%s\n",
			in.Customer, in.SLC, in.Product, in.CarePlusUntil, days, m.URL)
		m.Body["installation"] = map[string]any{"slc": in.SLC, "customer": in.Customer, "care_plus_until": in.CarePlusUntil}
		m.Body["days_left"] = days
	case TypeDigest:
		open, err := n.cfg.Store.OpenIncidents(ctx, d.IntegratorID)
		if err != nil {
			return m, keepwatch.Hold{}, err
		}
		if len(open) == 0 {
			return suppress("no open incidents")
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d open incidents on %s:\n\n", len(open), keepwatch.DateOf(now))
		for _, inc := range open {
			fmt.Fprintf(&b, "- [%s] %s (%s): %s — since %s%s\n", inc.State, inc.Customer, inc.SLC, describe(inc), inc.OpenedAt.Format(time.RFC3339), ackBy(inc))
		}
		m.Subject = fmt.Sprintf("[keepwatch] Daily digest: %d open incidents", len(open))
		m.Text = b.String()
		m.URL = n.cfg.PublicURL
		m.Body["incidents"] = open
	case TypeTest:
		m.Subject = "[keepwatch] Test notification"
		m.Text = "This is a test notification from keepwatch. If you can read it, the channel works.\n"
	default:
		return suppress(fmt.Sprintf("unknown notification type %q", d.Type))
	}
	return m, keepwatch.Hold{}, nil
}

// holdOpening re-checks an opening (or reminder) just before it goes
// out (keepwatch.HoldOpening). A reminder due during a maintenance window
// is dropped: the next one after the window speaks for it.
func (n *Notifier) holdOpening(ctx context.Context, d keepwatch.Notification, ic keepwatch.IncidentContext, now time.Time) (keepwatch.Hold, error) {
	rules, err := n.cfg.Store.Rules(ctx, d.IntegratorID)
	if err != nil {
		return keepwatch.Hold{}, err
	}
	var rule *keepwatch.Rule
	for i := range rules {
		if rules[i].ID == d.RuleID {
			rule = &rules[i]
		}
	}
	var end time.Time
	if n.cfg.MaintenanceEnd != nil {
		if end, err = n.cfg.MaintenanceEnd(ctx, ic.InstallationID, now); err != nil {
			return keepwatch.Hold{}, err
		}
	}
	hold := keepwatch.HoldOpening(d, ic.Incident, rule, end, now)
	if !hold.Until.IsZero() && d.Type == TypeReminder {
		return keepwatch.Hold{Suppress: "maintenance window"}, nil
	}
	return hold, nil
}

func (n *Notifier) link(slc string) string {
	if n.cfg.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(n.cfg.PublicURL, "/") + "/installations/" + url.PathEscape(slc)
}

func (n *Notifier) incidentLink(id int64) string {
	if n.cfg.PublicURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/incidents/%d", strings.TrimRight(n.cfg.PublicURL, "/"), id)
}

func describe(inc keepwatch.Incident) string {
	switch {
	case inc.Kind == keepwatch.KindSiteUnreachable:
		return fmt.Sprintf("site unreachable — all %d servers stopped reporting (Internet link?)", inc.Count)
	case inc.Kind == keepwatch.KindServerUnavailable:
		return fmt.Sprintf("server %s unavailable (three heartbeats missed)", inc.Server)
	case inc.Subject != "":
		return fmt.Sprintf("%s on %s (%s)", inc.Kind, inc.Server, inc.Subject)
	}
	return fmt.Sprintf("%s on %s", inc.Kind, inc.Server)
}

func ackBy(inc keepwatch.Incident) string {
	if inc.AckedBy == "" {
		return ""
	}
	return ", acknowledged by " + inc.AckedBy
}

func (n *Notifier) incidentMessage(m *Message, typ keepwatch.NotificationType, ic keepwatch.IncidentContext) {
	m.URL = n.link(ic.SLC)
	what := describe(ic.Incident)
	var verb string
	switch typ {
	case TypeOpened:
		verb = strings.ToUpper(string(ic.Severity))
	case TypeReminder:
		verb = "STILL OPEN"
	case TypeResolved:
		verb = "RESOLVED"
	case TypeAcknowledged:
		verb = "ACKNOWLEDGED"
	}
	m.Incident, m.Headline, m.IncidentURL = &ic, what, n.incidentLink(ic.ID)
	m.Subject = fmt.Sprintf("[keepwatch] %s: %s — %s", verb, ic.Customer, what)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nCustomer:     %s\nSLC:          %s\nIncident:     #%d (%s)\nSince:        %s\n",
		what, ic.Customer, ic.SLC, ic.ID, ic.State, ic.OpenedAt.Format(time.RFC3339))
	if ic.ResolvedAt != nil {
		fmt.Fprintf(&b, "Resolved:     %s\n", ic.ResolvedAt.Format(time.RFC3339))
	}
	if ic.Annotation != "" {
		fmt.Fprintf(&b, "Note:         %s\n", ic.Annotation)
	}
	if ic.AckedBy != "" {
		fmt.Fprintf(&b, "Acknowledged: %s %s\n", ic.AckedBy, ic.AckNote)
	}
	if m.URL != "" {
		fmt.Fprintf(&b, "\n%s\n", m.URL)
	}
	m.Text = b.String()
	m.Body["incident"] = ic.Incident
	m.Body["installation"] = map[string]any{"slc": ic.SLC, "customer": ic.Customer}
	m.Body["summary"] = what
}

var htmlTemplate = template.Must(template.New("mail").Parse(`<!doctype html>
<html><body style="font-family:system-ui,sans-serif;color:#1f2933;max-width:640px">
<h2 style="margin:0 0 12px">{{.Subject}}</h2>
<pre style="font-family:inherit;white-space:pre-wrap;font-size:14px">{{.Text}}</pre>
{{if .URL}}<p><a href="{{.URL}}" style="background:#1f6feb;color:#fff;padding:8px 14px;border-radius:6px;text-decoration:none">Open in keepwatch</a></p>{{end}}
<p style="color:#7b8794;font-size:12px">keepwatch · notification {{.ID}}</p>
</body></html>`))

func renderHTML(m Message) string {
	var b bytes.Buffer
	htmlTemplate.Execute(&b, m)
	return b.String()
}
