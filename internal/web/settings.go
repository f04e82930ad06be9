package web

import (
	"net/http"
	"strconv"
	"strings"

	"keepwatch"
	"keepwatch/internal/auth"
)

// auditShown is how many audit entries the settings page lists.
const auditShown = 200

type settingsData struct {
	Users  []keepwatch.User
	Tokens []keepwatch.Token
	Audit  []keepwatch.AuditEntry
	Roles  []keepwatch.Role
	// Shown once, right after it was made: a new user's password or a new
	// API token. Only the hash is stored; the value reaches this page
	// through the session's flash.
	NewSecret, NewSecretFor, NewSecretKind string
}

var roles = []keepwatch.Role{keepwatch.RoleViewer, keepwatch.RoleTechnician, keepwatch.RoleOwner}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request, rq *request) error {
	d := settingsData{}
	for _, kind := range []string{"token", "password"} {
		v, err := h.takeFlash(r.Context(), rq, "new-"+kind)
		if err != nil {
			return err
		}
		if v != "" {
			d.NewSecretKind = kind
			d.NewSecretFor, d.NewSecret, _ = strings.Cut(v, "\n")
		}
	}
	return h.renderSettings(w, r, rq, http.StatusOK, d, formState{})
}

func (h *Handler) renderSettings(w http.ResponseWriter, r *http.Request, rq *request, status int, d settingsData, form formState) error {
	p, ctx := rq.principal(), r.Context()
	var err error
	if d.Users, err = h.Store.Users(ctx, p.IntegratorID); err != nil {
		return err
	}
	if d.Tokens, err = h.Store.Tokens(ctx, p.IntegratorID); err != nil {
		return err
	}
	if d.Audit, err = h.Store.AuditLog(ctx, p.IntegratorID, auditShown); err != nil {
		return err
	}
	d.Roles = roles
	pg := h.newPage(r, rq, "Settings", "settings", d)
	pg.Form = form
	pg.Error = form.Err(form.of + ".form") // a refusal about no one field
	return h.render(w, status, "settings", pg)
}

// refused shows a refused form on the settings page, beside field; other
// errors go to the error page.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, rq *request, form, field string, err error) error {
	switch code := keepwatch.ErrorCode(err); code {
	case keepwatch.EINVALID, keepwatch.ECONFLICT:
		return h.renderSettings(w, r, rq, statusOf(code), settingsData{}, refusedForm(r, form, field, err))
	}
	return err
}

func formRole(r *http.Request) (keepwatch.Role, error) {
	return keepwatch.ParseRole(r.PostFormValue("role"))
}

func (h *Handler) addUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	u, password, err := auth.NewUser(r.Context(), h.Store, rq.principal(), r.PostFormValue("email"), r.PostFormValue("role"))
	if err != nil {
		field := "email"
		if _, eerr := keepwatch.NormalizeEmail(r.PostFormValue("email")); eerr == nil && keepwatch.ErrorCode(err) == keepwatch.EINVALID {
			field = "role"
		}
		return h.refused(w, r, rq, "user", field, err)
	}
	h.audit(r, rq, "user.add", u.Email, "role "+string(u.Role))
	if err := h.putFlash(r.Context(), rq, "new-password", u.Email+"\n"+password); err != nil {
		return err
	}
	redirectTo(w, r, "/settings", "userAdded", "new-secret-card")
	return nil
}

func pathID(r *http.Request, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such %s in your account", what)
	}
	return id, nil
}

func (h *Handler) setUserRole(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	role, err := formRole(r)
	if err != nil {
		return h.refused(w, r, rq, "role", "form", err)
	}
	p := rq.principal()
	u, err := h.Store.User(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	if err := h.Store.SetUserRole(r.Context(), p.IntegratorID, id, role); err != nil {
		return h.refused(w, r, rq, "role", "form", err)
	}
	h.Auth.CredentialsChanged()
	h.audit(r, rq, "user.role", u.Email, string(u.Role)+" → "+string(role))
	redirectDone(w, r, "/settings", "role")
	return nil
}

func (h *Handler) removeUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	p := rq.principal()
	u, err := h.Store.User(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	if err := h.Store.DeleteUser(r.Context(), p.IntegratorID, id); err != nil {
		return h.refused(w, r, rq, "remove", "form", err)
	}
	h.Auth.CredentialsChanged()
	h.audit(r, rq, "user.remove", u.Email, "")
	if id == rq.session.UserID {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	redirectDone(w, r, "/settings", "removed")
	return nil
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, rq *request) error {
	tok, value, err := auth.NewToken(r.Context(), h.Store, rq.principal(), r.PostFormValue("name"), r.PostFormValue("role"))
	if err != nil {
		field := "name"
		if _, nerr := keepwatch.ValidTokenName(r.PostFormValue("name")); nerr == nil {
			field = "role"
		}
		return h.refused(w, r, rq, "token", field, err)
	}
	h.audit(r, rq, "token.create", tok.Name, "role "+string(tok.Role))
	if err := h.putFlash(r.Context(), rq, "new-token", tok.Name+"\n"+value); err != nil {
		return err
	}
	redirectTo(w, r, "/settings", "tokenCreated", "new-secret-card")
	return nil
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "token")
	if err != nil {
		return err
	}
	p := rq.principal()
	name, err := h.Store.RevokeToken(r.Context(), p.IntegratorID, id)
	if err != nil {
		return h.refused(w, r, rq, "revoke", "form", err)
	}
	h.Auth.CredentialsChanged()
	h.audit(r, rq, "token.revoke", name, "")
	redirectDone(w, r, "/settings", "revoked")
	return nil
}
