package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"keepwatch"
)

// PagerDutyEventsURL is the Events API v2 endpoint a pagerduty channel
// sends to unless it has an endpoint of its own.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutyDedupKey is the alert key of a keepwatch incident: trigger,
// acknowledge and resolve of one incident address one PagerDuty alert.
func PagerDutyDedupKey(incidentID int64) string {
	return fmt.Sprintf("keepwatch-incident-%d", incidentID)
}

// pagerDutyEvents returns the events a message becomes (a test is a
// trigger and its resolve, so that nobody stays paged).
func (n *Notifier) pagerDutyEvents(ch keepwatch.Channel, m Message) []map[string]any {
	event := func(action, key string) map[string]any {
		return map[string]any{"routing_key": ch.Secret, "event_action": action, "dedup_key": key}
	}
	trigger := func(key, severity, source, component, group string, at time.Time, details map[string]any) map[string]any {
		e := event("trigger", key)
		e["payload"] = map[string]any{
			"summary": clip(m.Subject, 1024), "source": clip(source, 255), "severity": severity,
			"timestamp": at.UTC().Format(time.RFC3339), "component": component, "group": group,
			"class": component, "custom_details": details,
		}
		e["client"] = "keepwatch"
		if n.cfg.PublicURL != "" {
			e["client_url"] = n.cfg.PublicURL
		}
		if link := messageLink(m); link != "" {
			e["links"] = []map[string]string{{"href": link, "text": "Open in keepwatch"}}
		}
		return e
	}
	switch ic := m.Incident; {
	case ic != nil && m.Type == TypeAcknowledged:
		return []map[string]any{event("acknowledge", PagerDutyDedupKey(ic.ID))}
	case ic != nil && m.Type == TypeResolved:
		return []map[string]any{event("resolve", PagerDutyDedupKey(ic.ID))}
	case ic != nil:
		severity := "warning"
		switch {
		case ic.Kind == keepwatch.KindServerUnavailable || ic.Kind == keepwatch.KindSiteUnreachable:
			severity = "critical"
		case ic.Severity == keepwatch.SeverityError:
			severity = "error"
		}
		source := ic.SLC
		if ic.Server != "" {
			source = ic.Server + " (" + ic.SLC + ")"
		}
		details := map[string]any{"customer": ic.Customer, "slc": ic.SLC, "server": ic.Server, "condition": conditionLabel(ic.Incident),
			"kind": ic.Kind, "since": ic.OpenedAt.UTC().Format(time.RFC3339), "incident": ic.ID, "summary": m.Headline}
		events := []map[string]any{trigger(PagerDutyDedupKey(ic.ID), severity, source, ic.Kind, ic.SLC, ic.OpenedAt, details)}
		if ic.State == keepwatch.IncidentAcknowledged {
			// Acknowledged before its opening went out (a rule's minimum
			// duration): the alert starts acknowledged too.
			events = append(events, event("acknowledge", PagerDutyDedupKey(ic.ID)))
		}
		return events
	case m.Installation != nil:
		in := m.Installation
		key := fmt.Sprintf("keepwatch-careplus-%s-%s", in.SLC, in.CarePlusUntil)
		return []map[string]any{trigger(key, "info", in.SLC, keepwatch.KindCarePlusEnding, in.SLC, n.cfg.Now(),
			map[string]any{"customer": in.Customer, "slc": in.SLC, "care_plus_until": in.CarePlusUntil.String()})}
	default:
		key := fmt.Sprintf("keepwatch-test-%d", m.ID)
		return []map[string]any{trigger(key, "info", "keepwatch", "test", "keepwatch", n.cfg.Now(), map[string]any{"text": m.Text}),
			event("resolve", key)}
	}
}

// sendPagerDuty sends a message's events to the Events API v2, which
// answers 202 {"status":"success","dedup_key":…}, 400 to an invalid
// event, 429 when the routing key sends too fast.
func (n *Notifier) sendPagerDuty(ctx context.Context, ch keepwatch.Channel, m Message) error {
	for _, e := range n.pagerDutyEvents(ch, m) {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, _, err := n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: endpoint(ch, PagerDutyEventsURL), ContentType: "application/json", Body: b}); err != nil {
			return err
		}
	}
	return nil
}
