package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"keepwatch"
	"keepwatch/internal/auth"
)

type loginData struct {
	Email    string
	Next     string
	Passkeys bool // offer "Sign in with a passkey"
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	if _, _, err := h.Auth.Session(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	p := h.newPage(r, nil, "Sign in", "", loginData{Next: safeNext(r.URL.Query().Get("next")), Passkeys: h.Auth.PasskeysAvailable()})
	return h.render(w, http.StatusOK, "login", p)
}

// safeNext keeps a post-login redirect on this site: a path on this
// origin as a browser will read it. Browsers drop tabs and newlines from
// URLs, read a backslash as a slash and collapse what follows, so
// "/\t/evil.example" becomes "//evil.example", another site. Anything
// outside printable ASCII, any backslash, a leading "//" before or after
// unescaping, or anything with a scheme or host is refused.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	path, err := url.PathUnescape(u.EscapedPath())
	if err != nil || !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.ContainsAny(path, "\\\t\r\n") {
		return "/"
	}
	if l := strings.ToLower(next); strings.HasPrefix(l, "/%2f") || strings.HasPrefix(l, "/%5c") || strings.Contains(l, "%09") ||
		strings.Contains(l, "%0a") || strings.Contains(l, "%0d") {
		return "/"
	}
	return next
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	next := safeNext(r.PostFormValue("next"))
	value, u, err := h.Auth.Login(r.Context(), email, r.PostFormValue("password"), auth.ClientIP(r), r.UserAgent())
	if err != nil {
		var lim *auth.Limited
		var need *auth.SecondFactorNeeded
		status := statusOf(keepwatch.ErrorCode(err))
		switch {
		case errors.As(err, &need):
			h.secondFactorStep(w, r, need, next)
			return nil
		case errors.As(err, &lim):
			w.Header().Set("Retry-After", fmt.Sprint(int(lim.Wait.Seconds()+0.999)))
		case status >= 500:
			return err
		}
		p := h.newPage(r, nil, "Sign in", "", loginData{Email: email, Next: next, Passkeys: h.Auth.PasskeysAvailable()})
		p.Error = keepwatch.ErrorMessage(err)
		return h.render(w, status, "login", p)
	}
	h.Auth.SetCookie(w, r, value)
	p := keepwatch.Principal{IntegratorID: u.IntegratorID, Role: u.Role, Actor: "user:" + u.Email}
	h.Auth.Record(r, p, "web", "session.login", u.Email, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.Auth.Logout(r.Context(), rq.idHash); err != nil {
		return err
	}
	h.audit(r, rq, "session.logout", rq.session.Email, "")
	h.Auth.SetCookie(w, r, "")
	http.Redirect(w, r, "/login?done=signedOut", http.StatusSeeOther)
	return nil
}
