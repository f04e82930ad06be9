package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"keepwatch"
)

// Adaptive Card content type, as Teams Workflows ("When a Teams webhook
// request is received") expects in a message's attachments.
const adaptiveCardType = "application/vnd.microsoft.card.adaptive"

// teamsPayload is a Teams message carrying one Adaptive Card (version
// 1.4, which Teams renders everywhere).
func teamsPayload(m Message) map[string]any {
	title := strings.TrimPrefix(m.Subject, "[keepwatch] ")
	color := "Default"
	switch {
	case m.Type == TypeResolved:
		color = "Good"
	case m.Incident != nil && m.Incident.Severity == keepwatch.SeverityError:
		color = "Attention"
	case m.Incident != nil:
		color = "Warning"
	}
	body := []map[string]any{
		{"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true, "color": color},
	}
	if ic := m.Incident; ic != nil {
		facts := []map[string]string{
			{"title": "Customer", "value": ic.Customer},
			{"title": "SLC", "value": ic.SLC},
			{"title": "Server", "value": orDash(ic.Server)},
			{"title": "Condition", "value": conditionLabel(ic.Incident)},
			{"title": "Since", "value": ic.OpenedAt.UTC().Format(time.RFC3339)},
			{"title": "State", "value": string(ic.State)},
		}
		if ic.AckedBy != "" && m.Type != TypeOpened {
			facts = append(facts, map[string]string{"title": "Acknowledged", "value": strings.TrimSpace(ic.AckedBy + " " + ic.AckNote)})
		}
		body = append(body,
			map[string]any{"type": "TextBlock", "text": m.Headline, "wrap": true},
			map[string]any{"type": "FactSet", "facts": facts})
	} else {
		body = append(body, map[string]any{"type": "TextBlock", "text": m.Text, "wrap": true})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
	}
	if link := messageLink(m); link != "" {
		card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": "Open in keepwatch", "url": link}}
	}
	return map[string]any{
		"type":        "message",
		"summary":     clip(m.Subject, 250),
		"attachments": []map[string]any{{"contentType": adaptiveCardType, "contentUrl": nil, "content": card}},
	}
}

// sendTeams posts to the channel's Teams Workflows webhook URL (or its
// endpoint). The workflow answers 202 Accepted (200 from older
// connectors), 429 with Retry-After when throttled.
func (n *Notifier) sendTeams(ctx context.Context, ch keepwatch.Channel, m Message) error {
	b, err := json.Marshal(teamsPayload(m))
	if err != nil {
		return err
	}
	_, _, err = n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: endpoint(ch, ch.Secret), ContentType: "application/json", Body: b})
	return err
}
