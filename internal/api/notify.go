package api

import (
	"net/http"
	"strconv"
	"time"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/respond"
)

// Notifications: channels, rules, the outbox, and incident history.
func (h *Handler) notifyRoutes() []Route {
	return []Route{
		{"GET", "/api/v1/incidents/{id}/history", keepwatch.RoleViewer, h.incidentHistory, ""},
		{"GET", "/api/v1/notifications", keepwatch.RoleViewer, h.listNotifications, ""},
		// Where channels deliver (addresses, URLs that may carry keys) is
		// for owners only.
		{"GET", "/api/v1/channels", keepwatch.RoleOwner, h.listChannels, ""},
		{"POST", "/api/v1/channels", keepwatch.RoleOwner, h.createChannel, "channel.create"},
		{"POST", "/api/v1/channels/{id}/test", keepwatch.RoleOwner, h.testChannel, "channel.test"},
		{"DELETE", "/api/v1/channels/{id}", keepwatch.RoleOwner, h.deleteChannel, "channel.delete"},
		{"GET", "/api/v1/rules", keepwatch.RoleTechnician, h.listRules, ""},
		{"POST", "/api/v1/rules", keepwatch.RoleOwner, h.createRule, "rule.create"},
		{"DELETE", "/api/v1/rules/{id}", keepwatch.RoleOwner, h.deleteRule, "rule.delete"},
	}
}

func pathID(r *http.Request, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such %s in your account", what)
	}
	return id, nil
}

func (h *Handler) incidentHistory(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	hist, err := h.Store.IncidentHistory(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"history": hist})
	return nil
}

func (h *Handler) listNotifications(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	ns, err := h.Store.Notifications(r.Context(), p.IntegratorID, 500)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"notifications": ns})
	return nil
}

func (h *Handler) listChannels(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	cs, err := h.Store.Channels(r.Context(), p.IntegratorID)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"channels": cs})
	return nil
}

func (h *Handler) createChannel(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	var req keepwatch.ChannelSpec
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c, err := notify.CreateChannel(r.Context(), h.Store, p.IntegratorID, req)
	if err != nil {
		return err
	}
	out := map[string]any{"channel": c}
	if c.Type == keepwatch.ChannelWebhook {
		out["secret"] = c.Secret // shown once: it signs every webhook
	}
	respond.JSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) deleteChannel(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "channel")
	if err != nil {
		return err
	}
	if err := h.Store.DeleteChannel(r.Context(), p.IntegratorID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) testChannel(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "channel")
	if err != nil {
		return err
	}
	if err := notify.QueueTest(r.Context(), h.Store, p.IntegratorID, id, h.Now()); err != nil {
		return err
	}
	respond.JSON(w, http.StatusAccepted, map[string]string{"status": "queued"})
	return nil
}

func (h *Handler) listRules(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	rs, err := h.Store.Rules(r.Context(), p.IntegratorID)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"rules": rs})
	return nil
}

// ruleRequest is the body of POST /api/v1/rules; durations in seconds.
type ruleRequest struct {
	Name               string   `json:"name"`
	ChannelID          int64    `json:"channel_id"`
	Kinds              []string `json:"kinds"`
	MinSeverity        string   `json:"min_severity"`
	SLCs               []string `json:"slcs"`
	MinDurationSeconds int64    `json:"min_duration_seconds"`
	RepeatSeconds      int64    `json:"repeat_seconds"`
	UnackedOnly        bool     `json:"unacked_only"`
}

func (h *Handler) createRule(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	var req ruleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	rule, err := ruleFromRequest(req)
	if err != nil {
		return err
	}
	rule, err = h.Store.CreateRule(r.Context(), p.IntegratorID, rule)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, rule)
	return nil
}

func ruleFromRequest(req ruleRequest) (keepwatch.Rule, error) {
	const week = 7 * 24 * 3600
	if req.MinDurationSeconds < 0 || req.MinDurationSeconds > week || req.RepeatSeconds < 0 || req.RepeatSeconds > week {
		return keepwatch.Rule{}, keepwatch.Errorf(keepwatch.EINVALID, "min_duration_seconds is 0 to a week; repeat_seconds is 0 (off) or 60 to a week")
	}
	rule := keepwatch.Rule{Name: req.Name, ChannelID: req.ChannelID, Enabled: true, UnackedOnly: req.UnackedOnly,
		Kinds: req.Kinds, SLCs: req.SLCs, MinSeverity: keepwatch.Severity(req.MinSeverity),
		MinDuration: keepwatch.Duration(time.Duration(req.MinDurationSeconds) * time.Second),
		Repeat:      keepwatch.Duration(time.Duration(req.RepeatSeconds) * time.Second)}
	return rule, rule.Validate()
}

func (h *Handler) deleteRule(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "rule")
	if err != nil {
		return err
	}
	if err := h.Store.DeleteRule(r.Context(), p.IntegratorID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
