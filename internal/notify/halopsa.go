package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"keepwatch"
	"keepwatch/internal/outbound"
)

// HaloPSAClosedStatus is the status id HaloPSA gives "Closed" out of the
// box; a resolution sets it.
const HaloPSAClosedStatus = 9

// halo is one HaloPSA instance, signed in with a channel's API
// application (client credentials).
type halo struct {
	n     *Notifier
	base  string
	token string
}

// haloSignIn gets an access token from the instance's authorisation
// server: POST {endpoint}/auth/token.
func (n *Notifier) haloSignIn(ctx context.Context, ch keepwatch.Channel) (*halo, error) {
	base := strings.TrimRight(ch.Endpoint, "/")
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {ch.Target}, "client_secret": {ch.Secret}, "scope": {"all"}}
	_, body, err := n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: base + "/auth/token",
		ContentType: "application/x-www-form-urlencoded", Body: []byte(form.Encode())})
	if err != nil {
		return nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		return nil, outbound.Errorf("HaloPSA gave no access token", "token answer without access_token")
	}
	return &halo{n: n, base: base, token: tok.AccessToken}, nil
}

// post sends a JSON array of one record to /api/{resource}, as HaloPSA's
// API takes them, and returns its answer.
func (h *halo) post(ctx context.Context, resource string, record map[string]any) ([]byte, error) {
	b, err := json.Marshal([]map[string]any{record})
	if err != nil {
		return nil, err
	}
	_, body, err := h.n.vendorCall(ctx, http.MethodPost, vendorRequest{URL: h.base + "/api/" + resource, ContentType: "application/json", Body: b,
		Header: http.Header{"Authorization": {"Bearer " + h.token}}})
	return body, err
}

// createTicket opens a ticket and returns its id (HaloPSA answers with
// the ticket, or a list of one).
func (h *halo) createTicket(ctx context.Context, summary, details string) (string, error) {
	body, err := h.post(ctx, "Tickets", map[string]any{"summary": clip(summary, 250), "details": details})
	if err != nil {
		return "", err
	}
	var one struct {
		ID json.Number `json:"id"`
	}
	if json.Unmarshal(body, &one) != nil || one.ID == "" {
		var list []struct {
			ID json.Number `json:"id"`
		}
		if json.Unmarshal(body, &list) == nil && len(list) > 0 {
			one.ID = list[0].ID
		}
	}
	if _, err := strconv.ParseInt(one.ID.String(), 10, 64); err != nil {
		return "", outbound.Errorf("HaloPSA gave no ticket id", "ticket answer without id")
	}
	return one.ID.String(), nil
}

// note adds a private note (an action hidden from the end user).
func (h *halo) note(ctx context.Context, ticket, text string) error {
	id, _ := strconv.ParseInt(ticket, 10, 64)
	_, err := h.post(ctx, "Actions", map[string]any{"ticket_id": id, "note": text, "outcome": "Private Note", "hiddenfromuser": true})
	return err
}

// close sets the ticket's status to Closed.
func (h *halo) close(ctx context.Context, ticket string) error {
	id, _ := strconv.ParseInt(ticket, 10, 64)
	_, err := h.post(ctx, "Tickets", map[string]any{"id": id, "status_id": HaloPSAClosedStatus})
	return err
}

// sendHaloPSA keeps one ticket per incident and channel: an opening
// creates it (and keeps its id on the incident), a reminder or an
// acknowledgement adds a note, a resolution adds a note and closes it. A
// Care Plus warning is a ticket of its own; a test opens a ticket and
// closes it at once.
func (n *Notifier) sendHaloPSA(ctx context.Context, ch keepwatch.Channel, m Message, d keepwatch.Notification) error {
	h, err := n.haloSignIn(ctx, ch)
	if err != nil {
		return err
	}
	summary := strings.TrimPrefix(m.Subject, "[keepwatch] ")
	if m.Incident == nil {
		id, err := h.createTicket(ctx, summary, m.Text)
		if err != nil || m.Type != TypeTest {
			return err
		}
		return h.close(ctx, id)
	}
	ticket, err := n.cfg.Store.IncidentTicket(ctx, d.IntegratorID, ch.ID, d.IncidentID)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		ticket, err = "", nil
	}
	if err != nil {
		return err
	}
	switch {
	case m.Type == TypeOpened, m.Type == TypeReminder && ticket == "":
		// An opening after a resolution (reopened) gets a new ticket: the
		// old one is closed.
		id, err := h.createTicket(ctx, summary, m.Text)
		if err != nil {
			return err
		}
		return n.cfg.Store.SetIncidentTicket(ctx, d.IntegratorID, ch.ID, d.IncidentID, id)
	case ticket == "":
		return nil // no ticket was opened: nothing to note or close
	case m.Type == TypeResolved:
		if err := h.note(ctx, ticket, m.Text); err != nil {
			return err
		}
		return h.close(ctx, ticket)
	default:
		return h.note(ctx, ticket, fmt.Sprintf("%s\n\n%s", summary, m.Text))
	}
}
