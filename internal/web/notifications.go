package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/notify"
)

// notificationsShown is how many recent deliveries the page lists.
const notificationsShown = 200

type notificationsData struct {
	Channels      []keepwatch.Channel
	ChannelNames  map[int64]string
	Rules         []keepwatch.Rule
	Notifications []keepwatch.Notification
	// Shown once, right after a webhook channel was created.
	NewSecret, NewSecretFor string
}

func (h *Handler) notifications(w http.ResponseWriter, r *http.Request, rq *request) error {
	d := notificationsData{}
	v, err := h.takeFlash(r.Context(), rq, "new-channel-secret")
	if err != nil {
		return err
	}
	d.NewSecretFor, d.NewSecret, _ = strings.Cut(v, "\n")
	return h.renderNotifications(w, r, rq, http.StatusOK, d, "")
}

func (h *Handler) renderNotifications(w http.ResponseWriter, r *http.Request, rq *request, status int, d notificationsData, errMsg string) error {
	p, ctx := rq.principal(), r.Context()
	var err error
	if d.Notifications, err = h.Store.Notifications(ctx, p.IntegratorID, notificationsShown); err != nil {
		return err
	}
	if d.Channels, err = h.Store.Channels(ctx, p.IntegratorID); err != nil {
		return err
	}
	d.ChannelNames = map[int64]string{}
	for _, c := range d.Channels {
		d.ChannelNames[c.ID] = c.Name
	}
	switch {
	case p.Role.Allows(keepwatch.RoleOwner):
	case p.Role.Allows(keepwatch.RoleTechnician):
		// Technicians see which channels and rules exist; where a channel
		// delivers (an address, a URL that may carry a key) is for owners.
		for i := range d.Channels {
			d.Channels[i].Target, d.Channels[i].Secret, d.Channels[i].SecretHint, d.Channels[i].Endpoint = "", "", "", ""
		}
	default:
		// Viewers see what was sent, not where to.
		d.Channels = nil
	}
	if p.Role.Allows(keepwatch.RoleTechnician) {
		if d.Rules, err = h.Store.Rules(ctx, p.IntegratorID); err != nil {
			return err
		}
	}
	pg := h.newPage(r, rq, "Notifications", "notifications", d)
	pg.Error = errMsg
	return h.render(w, status, "notifications", pg)
}

func (h *Handler) notificationRefused(w http.ResponseWriter, r *http.Request, rq *request, err error) error {
	switch code := keepwatch.ErrorCode(err); code {
	case keepwatch.EINVALID, keepwatch.ECONFLICT:
		return h.renderNotifications(w, r, rq, statusOf(code), notificationsData{}, keepwatch.ErrorMessage(err))
	}
	return err
}

func (h *Handler) createChannel(w http.ResponseWriter, r *http.Request, rq *request) error {
	f := r.PostFormValue
	c, err := notify.CreateChannel(r.Context(), h.Store, rq.principal().IntegratorID, keepwatch.ChannelSpec{
		Name: f("name"), Type: f("type"), Target: f("target"), Digest: f("digest") == "on", Signature: f("signature"),
		Endpoint: f("endpoint"), URL: f("url"), RoutingKey: f("routing_key"), APIKey: f("api_key"), Token: f("token"), User: f("user"),
		ClientID: f("client_id"), ClientSecret: f("client_secret")})
	if err != nil {
		return h.notificationRefused(w, r, rq, err)
	}
	h.audit(r, rq, "channel.create", c.Name, string(c.Type))
	if c.Type == keepwatch.ChannelWebhook {
		// Shown once after the redirect, never in the URL.
		if err := h.putFlash(r.Context(), rq, "new-channel-secret", c.Name+"\n"+c.Secret); err != nil {
			return err
		}
	}
	redirectDone(w, r, "/notifications", "channelCreated")
	return nil
}

func (h *Handler) deleteChannel(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "channel")
	if err != nil {
		return err
	}
	if err := h.Store.DeleteChannel(r.Context(), rq.principal().IntegratorID, id); err != nil {
		return err
	}
	h.audit(r, rq, "channel.delete", strconv.FormatInt(id, 10), "")
	redirectDone(w, r, "/notifications", "channelDeleted")
	return nil
}

func (h *Handler) testChannel(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "channel")
	if err != nil {
		return err
	}
	if err := notify.QueueTest(r.Context(), h.Store, rq.principal().IntegratorID, id, h.now()); err != nil {
		return h.notificationRefused(w, r, rq, err)
	}
	h.audit(r, rq, "channel.test", strconv.FormatInt(id, 10), "")
	redirectDone(w, r, "/notifications", "testQueued")
	return nil
}

func (h *Handler) createRule(w http.ResponseWriter, r *http.Request, rq *request) error {
	channel, _ := strconv.ParseInt(r.PostFormValue("channel"), 10, 64)
	minutes := func(field string) time.Duration {
		n, _ := strconv.ParseFloat(r.PostFormValue(field), 64)
		return time.Duration(n * float64(time.Minute))
	}
	rule := keepwatch.Rule{Name: strings.TrimSpace(r.PostFormValue("name")), ChannelID: channel, Enabled: true,
		MinSeverity: keepwatch.Severity(r.PostFormValue("severity")), UnackedOnly: r.PostFormValue("unacked") == "on",
		MinDuration: keepwatch.Duration(minutes("min_minutes")), Repeat: keepwatch.Duration(minutes("repeat_minutes")),
		Kinds: fields(r.PostFormValue("kinds")), SLCs: fields(r.PostFormValue("slcs"))}
	if err := rule.Validate(); err != nil {
		return h.notificationRefused(w, r, rq, err)
	}
	rule, err := h.Store.CreateRule(r.Context(), rq.principal().IntegratorID, rule)
	if err != nil {
		return h.notificationRefused(w, r, rq, err)
	}
	h.audit(r, rq, "rule.create", rule.Name, "")
	redirectDone(w, r, "/notifications", "ruleCreated")
	return nil
}

// fields splits a comma- or space-separated form value.
func fields(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

func (h *Handler) deleteRule(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "rule")
	if err != nil {
		return err
	}
	if err := h.Store.DeleteRule(r.Context(), rq.principal().IntegratorID, id); err != nil {
		return err
	}
	h.audit(r, rq, "rule.delete", strconv.FormatInt(id, 10), "")
	redirectDone(w, r, "/notifications", "ruleDeleted")
	return nil
}
