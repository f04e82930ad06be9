package api

import (
	"net/http"
	"strconv"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/respond"
)

// peopleRoutes are the account's users, API tokens and audit log, and who
// an incident is assigned to: what the dashboard's settings and incident
// pages do, with the same validation and the same audit entries.
func (h *Handler) peopleRoutes() []Route {
	return []Route{
		{"POST", "/api/v1/incidents/{id}/assign", keepwatch.RoleTechnician, h.assignIncident, "incident.assign"},
		{"GET", "/api/v1/users", keepwatch.RoleOwner, h.listUsers, ""},
		{"POST", "/api/v1/users", keepwatch.RoleOwner, h.addUser, "user.add"},
		{"PATCH", "/api/v1/users/{id}", keepwatch.RoleOwner, h.setUserRole, "user.role"},
		{"DELETE", "/api/v1/users/{id}", keepwatch.RoleOwner, h.removeUser, "user.remove"},
		{"GET", "/api/v1/tokens", keepwatch.RoleOwner, h.listTokens, ""},
		{"POST", "/api/v1/tokens", keepwatch.RoleOwner, h.createToken, "token.create"},
		{"DELETE", "/api/v1/tokens/{id}", keepwatch.RoleOwner, h.revokeToken, "token.revoke"},
		{"GET", "/api/v1/audit", keepwatch.RoleOwner, h.auditLog, ""},
	}
}

func (h *Handler) assignIncident(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	var b struct {
		UserID *int64 `json:"user_id"`
	}
	if err := decode(w, r, &b); err != nil {
		return err
	}
	if b.UserID == nil || *b.UserID < 0 {
		return keepwatch.Errorf(keepwatch.EINVALID, "user_id is a user of your account, or 0 to unassign")
	}
	email, err := h.Store.AssignIncident(r.Context(), p.IntegratorID, id, *b.UserID, p.Actor)
	if err != nil {
		return err
	}
	detail := "unassigned"
	if email != "" {
		detail = "to " + email
	}
	setAudit(r, "incident "+strconv.FormatInt(id, 10), detail)
	n, err := h.Store.Incident(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, n)
	return nil
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	us, err := h.Store.Users(r.Context(), p.IntegratorID)
	if err != nil {
		return err
	}
	if us == nil {
		us = []keepwatch.User{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

// roleBody is the body of adding a user or a token, and of changing a
// user's role.
type roleBody struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

func (h *Handler) addUser(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	var b roleBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	u, password, err := auth.NewUser(r.Context(), h.Store, p, b.Email, b.Role)
	if err != nil {
		return err
	}
	setAudit(r, u.Email, "role "+string(u.Role))
	// The password is shown once; the user changes it, or resets it.
	respond.JSON(w, http.StatusCreated, map[string]any{"user": u, "password": password})
	return nil
}

func (h *Handler) setUserRole(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	var b roleBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	role, err := keepwatch.ParseRole(b.Role)
	if err != nil {
		return err
	}
	u, err := h.Store.User(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	if err := h.Store.SetUserRole(r.Context(), p.IntegratorID, id, role); err != nil {
		return err
	}
	h.Auth.CredentialsChanged()
	setAudit(r, u.Email, string(u.Role)+" → "+string(role))
	u.Role = role
	respond.JSON(w, http.StatusOK, u)
	return nil
}

func (h *Handler) removeUser(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	u, err := h.Store.User(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	if err := h.Store.DeleteUser(r.Context(), p.IntegratorID, id); err != nil {
		return err
	}
	h.Auth.CredentialsChanged()
	setAudit(r, u.Email, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	ts, err := h.Store.Tokens(r.Context(), p.IntegratorID)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []keepwatch.Token{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"tokens": ts})
	return nil
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	var b roleBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	tk, value, err := auth.NewToken(r.Context(), h.Store, p, b.Name, b.Role)
	if err != nil {
		return err
	}
	setAudit(r, tk.Name, "role "+string(tk.Role))
	// The value is shown once; only its hash is stored.
	respond.JSON(w, http.StatusCreated, map[string]any{"token": tk, "value": value})
	return nil
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := pathID(r, "token")
	if err != nil {
		return err
	}
	name, err := h.Store.RevokeToken(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	h.Auth.CredentialsChanged()
	setAudit(r, name, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	limit := 200
	if s := r.URL.Query().Get("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 5000 {
			return keepwatch.Errorf(keepwatch.EINVALID, "limit must be 1 to 5000")
		}
	}
	es, err := h.Store.AuditLog(r.Context(), p.IntegratorID, limit)
	if err != nil {
		return err
	}
	if es == nil {
		es = []keepwatch.AuditEntry{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"entries": es})
	return nil
}
