package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/respond"
)

// The sign-in steps after (or instead of) the password: the second factor,
// enrolling one when the integrator requires it, passkeys, the company's
// identity provider, and password resets by e-mail.

// secondFactorStep sends a browser whose password was accepted on to the
// second-factor step (login.go's sign-in form calls it).
func (h *Handler) secondFactorStep(w http.ResponseWriter, r *http.Request, need *auth.SecondFactorNeeded, next string) {
	h.Auth.SetSignInCookie(w, r, need.Flow)
	target := "/login/verify"
	if next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

type verifyData struct {
	Pending  auth.Pending
	Next     string
	Setup    *auth.TOTPSetup
	Passkeys bool
	NewCodes []string
}

func (h *Handler) verifyPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	pending, err := h.Auth.PendingSignIn(r.Context(), auth.SignInValue(r))
	if err != nil {
		if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return nil
		}
		return err
	}
	return h.renderVerify(w, r, http.StatusOK, pending, nil, "")
}

func (h *Handler) renderVerify(w http.ResponseWriter, r *http.Request, status int, pending auth.Pending, setup *auth.TOTPSetup, errMsg string) error {
	d := verifyData{Pending: pending, Next: safeNext(r.FormValue("next")), Setup: setup, Passkeys: h.Auth.PasskeysAvailable()}
	if pending.Enrol && setup == nil {
		s, err := h.Auth.NewTOTP(pending.User)
		if err != nil {
			return err
		}
		d.Setup = &s
	}
	d.Pending.User.PasswordHash = ""
	title := "Second factor"
	if pending.Enrol {
		title = "Set up a second factor"
	}
	p := h.newPage(r, nil, title, "", d)
	p.Error = errMsg
	return h.render(w, status, "verify", p)
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request, _ *request) error {
	ctx, value, c := r.Context(), auth.SignInValue(r), auth.ClientOf(r)
	pending, err := h.Auth.PendingSignIn(ctx, value)
	if err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	var session string
	var codes []string
	if pending.Enrol {
		token := r.PostFormValue("setup")
		session, _, codes, err = h.Auth.EnrolTOTP(ctx, value, token, r.PostFormValue("code"), c)
		if err != nil {
			setup, serr := h.Auth.SetupFromToken(pending.User, token)
			if serr != nil {
				setup, serr = h.Auth.NewTOTP(pending.User)
			}
			if serr != nil {
				return serr
			}
			return h.verifyRefused(w, r, pending, &setup, err)
		}
	} else if session, _, err = h.Auth.VerifySecondFactor(ctx, value, r.PostFormValue("code"), c); err != nil {
		return h.verifyRefused(w, r, pending, nil, err)
	}
	h.Auth.SetSignInCookie(w, r, "")
	h.Auth.SetCookie(w, r, session)
	if codes != nil {
		// The first factor came with recovery codes: show them once,
		// signed in, before anything else.
		d := verifyData{Pending: pending, Next: next, NewCodes: codes}
		d.Pending.User.PasswordHash = ""
		return h.render(w, http.StatusCreated, "verify", h.newPage(r, nil, "Your recovery codes", "", d))
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// verifyRefused shows a wrong code on the second-factor page, or sends the
// browser back to sign in when the sign-in has ended.
func (h *Handler) verifyRefused(w http.ResponseWriter, r *http.Request, pending auth.Pending, setup *auth.TOTPSetup, err error) error {
	var lim *auth.Limited
	if errors.As(err, &lim) {
		w.Header().Set("Retry-After", fmt.Sprint(int(lim.Wait.Seconds()+0.999)))
	}
	code := keepwatch.ErrorCode(err)
	if auth.SignInEnded(err) {
		h.Auth.SetSignInCookie(w, r, "")
		p := h.newPage(r, nil, "Sign in", "", loginData{Next: safeNext(r.PostFormValue("next")), Passkeys: h.Auth.PasskeysAvailable()})
		p.Error = keepwatch.ErrorMessage(err)
		return h.render(w, statusOf(code), "login", p)
	}
	switch code {
	case keepwatch.EINVALID, keepwatch.EUNAUTHORIZED, keepwatch.ERATELIMITED, keepwatch.ECONFLICT:
		return h.renderVerify(w, r, statusOf(code), pending, setup, keepwatch.ErrorMessage(err))
	}
	return err
}

func (h *Handler) beginVerifyPasskey(w http.ResponseWriter, r *http.Request, _ *request) error {
	ctx, value := r.Context(), auth.SignInValue(r)
	pending, err := h.Auth.PendingSignIn(ctx, value)
	if err != nil {
		return h.jsonError(w, r, err)
	}
	var options []byte
	var ceremony string
	if pending.Enrol {
		options, ceremony, err = h.Auth.BeginEnrolPasskey(ctx, value, r.PostFormValue("name"))
	} else {
		options, ceremony, err = h.Auth.BeginPasskeySignIn(ctx, value)
	}
	if err != nil {
		return h.jsonError(w, r, err)
	}
	ceremonyJSON(w, options, ceremony)
	return nil
}

func (h *Handler) finishVerifyPasskey(w http.ResponseWriter, r *http.Request, _ *request) error {
	ctx, value, c := r.Context(), auth.SignInValue(r), auth.ClientOf(r)
	pending, err := h.Auth.PendingSignIn(ctx, value)
	if err != nil {
		return h.jsonError(w, r, err)
	}
	ceremony, response := r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential"))
	var session string
	next := safeNext(r.PostFormValue("next"))
	if pending.Enrol {
		// The account page then offers recovery codes.
		session, _, err = h.Auth.FinishEnrolPasskey(ctx, value, ceremony, response, c)
		next = "/account?done=passkeyAdded"
	} else {
		session, _, err = h.Auth.FinishPasskeySignIn(ctx, value, ceremony, response, c)
	}
	if err != nil {
		return h.jsonError(w, r, err)
	}
	h.Auth.SetSignInCookie(w, r, "")
	h.Auth.SetCookie(w, r, session)
	respond.JSON(w, http.StatusOK, map[string]string{"redirect": next})
	return nil
}

func (h *Handler) beginPasskeySignIn(w http.ResponseWriter, r *http.Request, _ *request) error {
	options, ceremony, err := h.Auth.BeginPasskeySignIn(r.Context(), "")
	if err != nil {
		return h.jsonError(w, r, err)
	}
	ceremonyJSON(w, options, ceremony)
	return nil
}

func (h *Handler) finishPasskeySignIn(w http.ResponseWriter, r *http.Request, _ *request) error {
	session, _, err := h.Auth.FinishPasskeySignIn(r.Context(), "", r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")), auth.ClientOf(r))
	if err != nil {
		return h.jsonError(w, r, err)
	}
	h.Auth.SetCookie(w, r, session)
	respond.JSON(w, http.StatusOK, map[string]string{"redirect": safeNext(r.PostFormValue("next"))})
	return nil
}

// Company sign-in.

func (h *Handler) oidcChoose(w http.ResponseWriter, r *http.Request, _ *request) error {
	name := strings.TrimSpace(r.URL.Query().Get("integrator"))
	if name == "" || !keepwatch.ValidText(name, 200) {
		return keepwatch.Errorf(keepwatch.EINVALID, "enter your company's keepwatch account name")
	}
	target := "/login/oidc/" + url.PathEscape(name)
	if next := safeNext(r.URL.Query().Get("next")); next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

func (h *Handler) oidcStart(w http.ResponseWriter, r *http.Request, _ *request) error {
	authURL, value, err := h.Auth.StartOIDC(r.Context(), r.PathValue("integrator"), safeNext(r.URL.Query().Get("next")))
	if err != nil {
		return err
	}
	h.Auth.SetSignInCookie(w, r, value)
	// Not a redirect: a sign-in begun from a form would be a form
	// submission redirected to another site, which the dashboard's CSP
	// (form-action 'self') forbids. The page moves on by itself.
	w.Header().Set("Refresh", "0; url="+authURL)
	return h.render(w, http.StatusOK, "continue", h.newPage(r, nil, "Company sign-in", "", map[string]string{"URL": authURL}))
}

func (h *Handler) oidcCallback(w http.ResponseWriter, r *http.Request, _ *request) error {
	q := r.URL.Query()
	h.Auth.SetSignInCookie(w, r, "")
	if e := q.Get("error"); e != "" {
		h.Logger.Info("company sign-in: the identity provider refused", "error", e)
		return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "your company's identity provider did not sign you in; try again")
	}
	session, next, err := h.Auth.FinishOIDC(r.Context(), r.PathValue("integrator"), auth.SignInValue(r), q.Get("state"), q.Get("code"), auth.ClientOf(r))
	if err != nil {
		return err
	}
	h.Auth.SetCookie(w, r, session)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
	return nil
}

// Password resets.

type resetData struct {
	Email string
	Sent  bool
	Token string
	For   string // the address a link is for
	Mail  bool   // keepwatch can send mail
}

func (h *Handler) resetRequestPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	if r.URL.Query().Get("done") == "sent" {
		// After the request's redirect: a reload asks for nothing again.
		return h.render(w, http.StatusOK, "reset", h.newPage(r, nil, "Check your mail", "", resetData{Sent: true, Mail: h.Auth.MailEnabled()}))
	}
	return h.render(w, http.StatusOK, "reset", h.newPage(r, nil, "Forgot your password?", "", resetData{Mail: h.Auth.MailEnabled()}))
}

func (h *Handler) resetRequest(w http.ResponseWriter, r *http.Request, _ *request) error {
	email := strings.TrimSpace(r.PostFormValue("email"))
	d := resetData{Email: email, Mail: h.Auth.MailEnabled()}
	if err := h.Auth.RequestPasswordReset(r.Context(), email, auth.ClientOf(r)); err != nil {
		var lim *auth.Limited
		if errors.As(err, &lim) {
			w.Header().Set("Retry-After", fmt.Sprint(int(lim.Wait.Seconds()+0.999)))
			err = keepwatch.Errorf(keepwatch.ERATELIMITED, "Too many reset requests. Wait %s and try again.", waitText(lim))
		}
		code := keepwatch.ErrorCode(err)
		if statusOf(code) >= 500 && code != keepwatch.EUNAVAILABLE {
			return err
		}
		p := h.newPage(r, nil, "Forgot your password?", "", d)
		p.Error = keepwatch.ErrorMessage(err)
		return h.render(w, statusOf(code), "reset", p)
	}
	redirectDone(w, r, "/password-reset", "sent")
	return nil
}

func waitText(l *auth.Limited) string {
	secs := int(l.Wait.Seconds() + 0.999)
	if secs < 90 {
		return fmt.Sprintf("%d seconds", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

func (h *Handler) resetPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	token := r.PathValue("token")
	u, err := h.Auth.PasswordResetUser(r.Context(), token)
	if err != nil {
		return h.resetLinkRefused(w, r, err)
	}
	// The link stays out of Referer headers and history sniffers: the page
	// has no outside resources, and the form posts to itself.
	return h.render(w, http.StatusOK, "reset", h.newPage(r, nil, "Set a new password", "", resetData{Token: token, For: u.Email}))
}

func (h *Handler) resetLinkRefused(w http.ResponseWriter, r *http.Request, err error) error {
	if keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
		return err
	}
	p := h.newPage(r, nil, "Forgot your password?", "", resetData{Mail: h.Auth.MailEnabled()})
	p.Error = keepwatch.ErrorMessage(err)
	return h.render(w, http.StatusUnauthorized, "reset", p)
}

func (h *Handler) reset(w http.ResponseWriter, r *http.Request, _ *request) error {
	token := r.PathValue("token")
	next := r.PostFormValue("password")
	if next != r.PostFormValue("confirm") {
		u, err := h.Auth.PasswordResetUser(r.Context(), token)
		if err != nil {
			return h.resetLinkRefused(w, r, err)
		}
		p := h.newPage(r, nil, "Set a new password", "", resetData{Token: token, For: u.Email})
		p.Error = "The two passwords differ."
		return h.render(w, http.StatusBadRequest, "reset", p)
	}
	u, err := h.Auth.ResetPassword(r.Context(), token, next, auth.ClientOf(r))
	if err != nil {
		if keepwatch.ErrorCode(err) == keepwatch.EINVALID {
			p := h.newPage(r, nil, "Set a new password", "", resetData{Token: token, For: u.Email})
			p.Error = keepwatch.ErrorMessage(err)
			return h.render(w, http.StatusBadRequest, "reset", p)
		}
		return h.resetLinkRefused(w, r, err)
	}
	http.Redirect(w, r, "/login?done=passwordReset", http.StatusSeeOther)
	return nil
}
