package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"keepwatch"
)

// Slack limits (Block Kit): header text 150 characters, section text
// 3000, a field 2000, at most 10 fields.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
)

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackText escapes what Slack's mrkdwn would read as markup.
func slackText(s string) string { return slackEscaper.Replace(s) }

// slackPayload is the message posted to a Slack incoming webhook: a
// plain-text fallback (notifications, old clients) and Block Kit blocks.
func slackPayload(m Message) map[string]any {
	title := strings.TrimPrefix(m.Subject, "[keepwatch] ")
	blocks := []map[string]any{
		{"type": "header", "text": map[string]any{"type": "plain_text", "text": clip(title, slackHeaderMax), "emoji": false}},
	}
	if ic := m.Incident; ic != nil {
		field := func(label, v string) map[string]any {
			return map[string]any{"type": "mrkdwn", "text": clip("*"+label+"*\n"+slackText(v), slackFieldMax)}
		}
		fields := []map[string]any{
			field("Customer", ic.Customer), field("SLC", ic.SLC),
			field("Server", orDash(ic.Server)), field("Condition", conditionLabel(ic.Incident)),
			field("Since", ic.OpenedAt.UTC().Format(time.RFC3339)), field("State", string(ic.State)),
		}
		blocks = append(blocks,
			map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": clip(slackText(m.Headline), slackSectionMax)}},
			map[string]any{"type": "section", "fields": fields})
		if ic.AckedBy != "" && m.Type != TypeOpened {
			blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{
				{"type": "mrkdwn", "text": clip("Acknowledged by "+slackText(ic.AckedBy+" "+ic.AckNote), slackSectionMax)}}})
		}
	} else {
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": clip(slackText(m.Text), slackSectionMax)}})
	}
	if link := messageLink(m); link != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []map[string]any{
			{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Open in keepwatch"}, "url": link, "action_id": "open"}}})
	}
	return map[string]any{"text": clip(m.Subject, slackSectionMax), "blocks": blocks}
}

// sendSlack posts to the channel's incoming webhook URL (or its
// endpoint). Slack answers 200 "ok", or 429 with Retry-After.
func (n *Notifier) sendSlack(ctx context.Context, ch keepwatch.Channel, m Message) error {
	b, err := json.Marshal(slackPayload(m))
	if err != nil {
		return err
	}
	_, _, err = n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: endpoint(ch, ch.Secret), ContentType: "application/json", Body: b})
	return err
}

// messageLink is the page a message points to: the incident's, else the
// installation's or the dashboard's.
func messageLink(m Message) string {
	if m.IncidentURL != "" {
		return m.IncidentURL
	}
	return m.URL
}

// conditionLabel names an incident's condition for people: its kind and
// subject.
func conditionLabel(inc keepwatch.Incident) string {
	label := keepwatch.KindLabel(inc.Kind)
	if inc.Subject != "" {
		label += " (" + inc.Subject + ")"
	}
	return label
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
