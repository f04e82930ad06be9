package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// OpsgenieAPIURL is the Opsgenie API an opsgenie channel uses unless its
// endpoint names another (https://api.eu.opsgenie.com for the EU).
const OpsgenieAPIURL = "https://api.opsgenie.com"

// OpsgenieAlias is the alert alias of a keepwatch incident: its opening,
// acknowledgement and resolution address one Opsgenie alert.
func OpsgenieAlias(incidentID int64) string {
	return fmt.Sprintf("keepwatch-incident-%d", incidentID)
}

// opsgenieRequest is one call of the Alert API: a path under /v2/alerts
// and its JSON body.
type opsgenieRequest struct {
	path string
	body map[string]any
}

// opsgenieRequests returns the calls a message becomes: an alert created
// on an opening (and acknowledged at once if the incident already was),
// acknowledged or closed by its alias later. A test creates an alert and
// closes it.
func (n *Notifier) opsgenieRequests(m Message) []opsgenieRequest {
	action := func(alias, verb, note string) opsgenieRequest {
		return opsgenieRequest{path: "/v2/alerts/" + url.PathEscape(alias) + "/" + verb + "?identifierType=alias",
			body: map[string]any{"source": "keepwatch", "user": "keepwatch", "note": clip(note, 25000)}}
	}
	create := func(alias, priority, entity string, details map[string]string) opsgenieRequest {
		body := map[string]any{
			"message": clip(strings.TrimPrefix(m.Subject, "[keepwatch] "), 130), "alias": alias,
			"description": clip(m.Text, 15000), "source": "keepwatch", "priority": priority,
			"entity": clip(entity, 512), "details": details, "tags": []string{"keepwatch"},
		}
		if link := messageLink(m); link != "" {
			details["link"] = link
		}
		return opsgenieRequest{path: "/v2/alerts", body: body}
	}
	switch ic := m.Incident; {
	case ic != nil && m.Type == TypeAcknowledged:
		return []opsgenieRequest{action(OpsgenieAlias(ic.ID), "acknowledge", strings.TrimSpace("Acknowledged in keepwatch by "+ic.AckedBy+". "+ic.AckNote))}
	case ic != nil && m.Type == TypeResolved:
		return []opsgenieRequest{action(OpsgenieAlias(ic.ID), "close", "Resolved in keepwatch.")}
	case ic != nil:
		priority := "P3"
		switch {
		case ic.Kind == keepwatch.KindServerUnavailable || ic.Kind == keepwatch.KindSiteUnreachable:
			priority = "P1"
		case ic.Severity == keepwatch.SeverityError:
			priority = "P2"
		}
		entity := ic.SLC
		if ic.Server != "" {
			entity = ic.Server + " (" + ic.SLC + ")"
		}
		reqs := []opsgenieRequest{create(OpsgenieAlias(ic.ID), priority, entity, map[string]string{
			"customer": ic.Customer, "slc": ic.SLC, "server": ic.Server, "condition": conditionLabel(ic.Incident),
			"since": ic.OpenedAt.UTC().Format(time.RFC3339), "incident": strconv.FormatInt(ic.ID, 10)})}
		if ic.State == keepwatch.IncidentAcknowledged {
			reqs = append(reqs, action(OpsgenieAlias(ic.ID), "acknowledge", "Acknowledged in keepwatch by "+ic.AckedBy+"."))
		}
		return reqs
	case m.Installation != nil:
		in := m.Installation
		return []opsgenieRequest{create(fmt.Sprintf("keepwatch-careplus-%s-%s", in.SLC, in.CarePlusUntil), "P5", in.SLC,
			map[string]string{"customer": in.Customer, "slc": in.SLC, "care_plus_until": in.CarePlusUntil.String()})}
	default:
		alias := fmt.Sprintf("keepwatch-test-%d", m.ID)
		return []opsgenieRequest{create(alias, "P5", "keepwatch", map[string]string{}), action(alias, "close", "Test notification.")}
	}
}

// sendOpsgenie calls the Alert API with the channel's key
// ("Authorization: GenieKey …"). Opsgenie answers 202 {"result":"Request
// will be processed",…} and processes requests in order per alias; 429
// when the key sends too fast.
func (n *Notifier) sendOpsgenie(ctx context.Context, ch keepwatch.Channel, m Message) error {
	base := strings.TrimRight(endpoint(ch, OpsgenieAPIURL), "/")
	for _, r := range n.opsgenieRequests(m) {
		b, err := json.Marshal(r.body)
		if err != nil {
			return err
		}
		if _, _, err := n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: base + r.path, ContentType: "application/json", Body: b,
			Header: http.Header{"Authorization": {"GenieKey " + ch.Secret}}}); err != nil {
			return err
		}
	}
	return nil
}
