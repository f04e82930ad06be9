package notify

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"keepwatch"
)

// PushoverMessagesURL is the Pushover Message API endpoint a pushover
// channel sends to unless it has an endpoint of its own.
const PushoverMessagesURL = "https://api.pushover.net/1/messages.json"

// pushoverForm is the message as Pushover's form fields, within its
// limits: message 1024 characters, title 250, url 512, url_title 100.
// Priority: 1 (high, bypasses quiet hours) for an error opening, -1 (no
// sound) for a resolution or a Care Plus warning, 0 otherwise.
func pushoverForm(ch keepwatch.Channel, m Message, now int64) url.Values {
	priority := 0
	switch {
	case m.Type == TypeResolved || m.Installation != nil:
		priority = -1
	case m.Incident != nil && m.Incident.Severity == keepwatch.SeverityError:
		priority = 1
	}
	text := m.Text
	if link := messageLink(m); link != "" {
		text = strings.TrimSuffix(strings.TrimSpace(text), link) // the link goes in url
	}
	f := url.Values{
		"token":     {ch.Secret},
		"user":      {ch.Target},
		"title":     {clip(strings.TrimPrefix(m.Subject, "[keepwatch] "), 250)},
		"message":   {clip(strings.TrimSpace(text), 1024)},
		"priority":  {strconv.Itoa(priority)},
		"timestamp": {strconv.FormatInt(now, 10)},
	}
	if link := messageLink(m); link != "" && len(link) <= 512 {
		f.Set("url", link)
		f.Set("url_title", "Open in keepwatch")
	}
	return f
}

// sendPushover posts the message; Pushover answers 200 {"status":1},
// 4xx {"status":0,"errors":[…]} to a bad token or user, 429 when the
// application's monthly limit is reached.
func (n *Notifier) sendPushover(ctx context.Context, ch keepwatch.Channel, m Message) error {
	body := pushoverForm(ch, m, n.cfg.Now().Unix()).Encode()
	_, _, err := n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: endpoint(ch, PushoverMessagesURL),
		ContentType: "application/x-www-form-urlencoded", Body: []byte(body)})
	return err
}
