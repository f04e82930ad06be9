package web

import (
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"strings"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/respond"
)

// The account pages: /account for everyone signed in (password, second
// factors, sessions), /settings/sign-in for owners (second-factor
// requirement, company sign-in), and the sign-in steps beyond the password
// (signin.go).

func init() {
	maps.Copy(flashes, map[string]string{
		"passwordChanged": "Password changed. Your other sessions have ended.",
		"passwordReset":   "Your password is set. Sign in with it.",
		"totpAdded":       "Authenticator app added.",
		"passkeyAdded":    "Passkey added.",
		"factorRemoved":   "Second factor removed.",
		"sessionEnded":    "Session ended.",
		"sessionsEnded":   "Your other sessions have ended.",
		"policySaved":     "Second-factor requirement saved.",
		"oidcSaved":       "Company sign-in saved.",
		"oidcRemoved":     "Company sign-in turned off.",
	})
}

// accountRoutes are the routes of the account pages and sign-in steps.
func (h *Handler) accountRoutes() []Route {
	return []Route{
		{"GET", "/account", keepwatch.RoleViewer, h.account},
		{"POST", "/account/password", keepwatch.RoleViewer, h.changePassword},
		{"POST", "/account/totp", keepwatch.RoleViewer, h.addTOTP},
		{"POST", "/account/factors/{id}/remove", keepwatch.RoleViewer, h.removeFactor},
		{"POST", "/account/recovery-codes", keepwatch.RoleViewer, h.newRecoveryCodes},
		{"POST", "/account/passkeys/begin", keepwatch.RoleViewer, h.beginPasskey},
		{"POST", "/account/passkeys/finish", keepwatch.RoleViewer, h.finishPasskey},
		{"POST", "/account/sessions/{handle}/end", keepwatch.RoleViewer, h.endSession},
		{"POST", "/account/sessions/end-others", keepwatch.RoleViewer, h.endOtherSessions},
		{"GET", "/settings/sign-in", keepwatch.RoleOwner, h.signInSettings},
		{"POST", "/settings/sign-in/second-factor", keepwatch.RoleOwner, h.setSecondFactorPolicy},
		{"POST", "/settings/sign-in/oidc", keepwatch.RoleOwner, h.setOIDC},
		{"POST", "/settings/sign-in/oidc/remove", keepwatch.RoleOwner, h.removeOIDC},

		{"GET", "/login/verify", "", h.verifyPage},
		{"POST", "/login/verify", "", h.verify},
		{"POST", "/login/verify/passkey/begin", "", h.beginVerifyPasskey},
		{"POST", "/login/verify/passkey/finish", "", h.finishVerifyPasskey},
		{"POST", "/login/passkey/begin", "", h.beginPasskeySignIn},
		{"POST", "/login/passkey/finish", "", h.finishPasskeySignIn},
		{"GET", "/login/oidc", "", h.oidcChoose},
		{"GET", "/login/oidc/{integrator}", "", h.oidcStart},
		{"GET", "/login/oidc/{integrator}/callback", "", h.oidcCallback},
		{"GET", "/password-reset", "", h.resetRequestPage},
		{"POST", "/password-reset", "", h.resetRequest},
		{"GET", "/password-reset/{token}", "", h.resetPage},
		{"POST", "/password-reset/{token}", "", h.reset},
	}
}

// parseAccountTemplates adds the account pages to the dashboard's pages.
func (h *Handler) parseAccountTemplates() error {
	for _, name := range []string{"account", "signin_settings", "verify", "reset", "continue"} {
		t, err := template.New(name).Funcs(templateFuncs()).Funcs(accountFuncs).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return err
		}
		h.pages[name] = t
	}
	return nil
}

var accountFuncs = template.FuncMap{
	// dataURL lets the QR code of a TOTP set-up through as an image.
	"dataURL": func(s string) template.URL {
		if strings.HasPrefix(s, "data:image/png;base64,") {
			return template.URL(s)
		}
		return ""
	},
	"otpauth": func(s string) template.URL {
		if strings.HasPrefix(s, "otpauth://totp/") {
			return template.URL(s)
		}
		return ""
	},
	"browser":     browserOf,
	"methodLabel": func(m string) string { return methodLabels[m] },
}

var methodLabels = map[string]string{
	"": "password", keepwatch.MethodPassword: "password", keepwatch.MethodPasswordTOTP: "password and app code",
	keepwatch.MethodPasswordPasskey: "password and passkey", keepwatch.MethodPasswordRecovery: "password and recovery code",
	keepwatch.MethodPasskey: "passkey", keepwatch.MethodOIDC: "company sign-in",
}

// browserOf names a browser and system from a User-Agent the way people
// say it ("Firefox on Windows"); the whole string is in the title.
func browserOf(ua string) string {
	var b, o string
	for _, c := range []struct{ key, name string }{{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"curl/", "curl"}} {
		if strings.Contains(ua, c.key) {
			b = c.name
			break
		}
	}
	for _, c := range []struct{ key, name string }{{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}} {
		if strings.Contains(ua, c.key) {
			o = c.name
			break
		}
	}
	switch {
	case b != "" && o != "":
		return b + " on " + o
	case b != "":
		return b
	case o != "":
		return o
	case ua == "":
		return "unknown browser"
	}
	if len(ua) > 40 {
		ua = ua[:40] + "…"
	}
	return ua
}

type accountData struct {
	User        keepwatch.LoginUser
	HasPassword bool
	Factors     []keepwatch.Factor
	HasTOTP     bool
	Recovery    int
	Sessions    []keepwatch.SessionInfo
	Required    bool
	Passkeys    bool // passkeys work at this address
	Setup       *auth.TOTPSetup
	NewCodes    []string // recovery codes, shown this once
}

func (h *Handler) account(w http.ResponseWriter, r *http.Request, rq *request) error {
	d := accountData{}
	// Recovery codes made by the form before the redirect, shown once.
	codes, err := h.takeFlash(r.Context(), rq, "recovery-codes")
	if err != nil {
		return err
	}
	if codes != "" {
		d.NewCodes = strings.Split(codes, "\n")
	}
	if r.URL.Query().Get("setup") == "totp" {
		u, err := h.Auth.LoginUser(r.Context(), rq.session)
		if err != nil {
			return err
		}
		setup, err := h.Auth.NewTOTP(u)
		if err != nil {
			return err
		}
		d.Setup = &setup
	}
	return h.renderAccount(w, r, rq, http.StatusOK, d, "")
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, rq *request, status int, d accountData, errMsg string) error {
	ctx, ss := r.Context(), rq.session
	var err error
	if d.User, err = h.Auth.LoginUser(ctx, ss); err != nil {
		return err
	}
	d.HasPassword = d.User.PasswordHash != ""
	d.User.PasswordHash = ""
	if d.Factors, err = h.Auth.Factors(ctx, ss.IntegratorID, ss.UserID); err != nil {
		return err
	}
	for _, f := range d.Factors {
		d.HasTOTP = d.HasTOTP || f.Kind == keepwatch.FactorTOTP
	}
	if d.Recovery, err = h.Auth.RecoveryCodesLeft(ctx, ss.IntegratorID, ss.UserID); err != nil {
		return err
	}
	if d.Sessions, err = h.Auth.Sessions(ctx, ss, rq.idHash); err != nil {
		return err
	}
	if d.Required, err = h.Auth.SecondFactorRequired(ctx, ss.IntegratorID); err != nil {
		return err
	}
	d.Passkeys = h.Auth.PasskeysAvailable()
	p := h.newPage(r, rq, "Account", "account", d)
	p.Error = errMsg
	return h.render(w, status, "account", p)
}

// accountRefused shows a refusal on the account page; other errors go to
// the error page.
func (h *Handler) accountRefused(w http.ResponseWriter, r *http.Request, rq *request, d accountData, err error) error {
	var lim *auth.Limited
	if errors.As(err, &lim) {
		w.Header().Set("Retry-After", fmt.Sprint(int(lim.Wait.Seconds()+0.999)))
	}
	switch code := keepwatch.ErrorCode(err); code {
	case keepwatch.EINVALID, keepwatch.ECONFLICT, keepwatch.EUNAUTHORIZED, keepwatch.ERATELIMITED:
		return h.renderAccount(w, r, rq, statusOf(code), d, keepwatch.ErrorMessage(err))
	}
	return err
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, rq *request) error {
	next := r.PostFormValue("password")
	if next != r.PostFormValue("confirm") {
		return h.accountRefused(w, r, rq, accountData{}, keepwatch.Errorf(keepwatch.EINVALID, "the two new passwords differ"))
	}
	if err := h.Auth.ChangePassword(r.Context(), rq.session, rq.idHash, r.PostFormValue("current"), next, auth.ClientOf(r)); err != nil {
		return h.accountRefused(w, r, rq, accountData{}, err)
	}
	redirectDone(w, r, "/account", "passwordChanged")
	return nil
}

func (h *Handler) addTOTP(w http.ResponseWriter, r *http.Request, rq *request) error {
	u, err := h.Auth.LoginUser(r.Context(), rq.session)
	if err != nil {
		return err
	}
	token := r.PostFormValue("setup")
	codes, err := h.Auth.ConfirmTOTP(r.Context(), u, token, r.PostFormValue("code"), auth.ClientOf(r))
	if err != nil {
		d := accountData{}
		if setup, serr := h.Auth.SetupFromToken(u, token); serr == nil {
			d.Setup = &setup
		}
		return h.accountRefused(w, r, rq, d, err)
	}
	return h.showCodes(w, r, rq, codes, "totpAdded")
}

// showCodes returns to the account page, which shows the new recovery
// codes (if any) once.
func (h *Handler) showCodes(w http.ResponseWriter, r *http.Request, rq *request, codes []string, done string) error {
	if len(codes) > 0 {
		if err := h.putFlash(r.Context(), rq, "recovery-codes", strings.Join(codes, "\n")); err != nil {
			return err
		}
	}
	redirectTo(w, r, "/account", done, "recovery-codes")
	return nil
}

func (h *Handler) removeFactor(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := pathID(r, "second factor")
	if err != nil {
		return err
	}
	if err := h.Auth.RemoveFactor(r.Context(), rq.session, id, auth.ClientOf(r)); err != nil {
		return h.accountRefused(w, r, rq, accountData{}, err)
	}
	redirectDone(w, r, "/account", "factorRemoved")
	return nil
}

func (h *Handler) newRecoveryCodes(w http.ResponseWriter, r *http.Request, rq *request) error {
	u, err := h.Auth.LoginUser(r.Context(), rq.session)
	if err != nil {
		return err
	}
	codes, err := h.Auth.NewRecoveryCodes(r.Context(), u, auth.ClientOf(r))
	if err != nil {
		return h.accountRefused(w, r, rq, accountData{}, err)
	}
	return h.showCodes(w, r, rq, codes, "codesCreated")
}

// ceremonyJSON answers the first half of a WebAuthn ceremony: the options
// for the browser and the handle to send back.
func ceremonyJSON(w http.ResponseWriter, options []byte, ceremony string) {
	respond.JSON(w, http.StatusOK, map[string]any{"options": jsonRaw(options), "ceremony": ceremony})
}

type jsonRaw []byte

func (j jsonRaw) MarshalJSON() ([]byte, error) { return j, nil }

// jsonError answers a script's request with a coded error.
func (h *Handler) jsonError(w http.ResponseWriter, r *http.Request, err error) error {
	respond.Error(w, r, h.Logger, err)
	return nil
}

func (h *Handler) beginPasskey(w http.ResponseWriter, r *http.Request, rq *request) error {
	u, err := h.Auth.LoginUser(r.Context(), rq.session)
	if err != nil {
		return h.jsonError(w, r, err)
	}
	options, ceremony, err := h.Auth.BeginPasskeyRegistration(r.Context(), u, r.PostFormValue("name"))
	if err != nil {
		return h.jsonError(w, r, err)
	}
	ceremonyJSON(w, options, ceremony)
	return nil
}

func (h *Handler) finishPasskey(w http.ResponseWriter, r *http.Request, rq *request) error {
	u, err := h.Auth.LoginUser(r.Context(), rq.session)
	if err != nil {
		return h.jsonError(w, r, err)
	}
	if err := h.Auth.FinishPasskeyRegistration(r.Context(), u, r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")), auth.ClientOf(r)); err != nil {
		return h.jsonError(w, r, err)
	}
	respond.JSON(w, http.StatusOK, map[string]string{"redirect": "/account?done=passkeyAdded"})
	return nil
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, rq *request) error {
	handle := r.PathValue("handle")
	current := false
	if list, err := h.Auth.Sessions(r.Context(), rq.session, rq.idHash); err == nil {
		for _, si := range list {
			current = current || si.Current && si.Handle == handle
		}
	}
	if err := h.Auth.EndSession(r.Context(), rq.session, rq.idHash, handle, auth.ClientOf(r)); err != nil {
		return err
	}
	if current {
		h.Auth.SetCookie(w, r, "")
		http.Redirect(w, r, "/login?done=signedOut", http.StatusSeeOther)
		return nil
	}
	redirectDone(w, r, "/account", "sessionEnded")
	return nil
}

func (h *Handler) endOtherSessions(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := h.Auth.EndOtherSessions(r.Context(), rq.session, rq.idHash, auth.ClientOf(r)); err != nil {
		return err
	}
	redirectDone(w, r, "/account", "sessionsEnded")
	return nil
}

// The owners' sign-in settings.

type signInSettingsData struct {
	Required  bool
	HasFactor bool
	OIDC      keepwatch.OIDCProvider
	HasOIDC   bool
	RoleMap   string
	Domains   string
	SignInURL string
	Redirect  string
	Roles     []keepwatch.Role
}

func (h *Handler) signInSettings(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.renderSignInSettings(w, r, rq, http.StatusOK, nil, "")
}

func (h *Handler) renderSignInSettings(w http.ResponseWriter, r *http.Request, rq *request, status int, form *keepwatch.OIDCProvider, errMsg string) error {
	ctx, ss := r.Context(), rq.session
	d := signInSettingsData{Roles: roles}
	var err error
	if d.Required, err = h.Auth.SecondFactorRequired(ctx, ss.IntegratorID); err != nil {
		return err
	}
	factors, err := h.Auth.Factors(ctx, ss.IntegratorID, ss.UserID)
	if err != nil {
		return err
	}
	d.HasFactor = len(factors) > 0
	if d.OIDC, d.HasOIDC, err = h.Auth.OIDCProvider(ctx, ss.IntegratorID); err != nil {
		return err
	}
	if form != nil {
		d.OIDC = *form
	}
	d.RoleMap, d.Domains = keepwatch.FormatRoleMap(d.OIDC.RoleMap), strings.Join(d.OIDC.Domains, ", ")
	name, err := h.Auth.IntegratorName(ctx, ss.IntegratorID)
	if err != nil {
		return err
	}
	d.SignInURL, d.Redirect = h.Auth.OIDCSignInURL(name), h.Auth.OIDCRedirectURL(name)
	p := h.newPage(r, rq, "Sign-in settings", "settings", d)
	p.Error = errMsg
	return h.render(w, status, "signin_settings", p)
}

func (h *Handler) setSecondFactorPolicy(w http.ResponseWriter, r *http.Request, rq *request) error {
	on := r.PostFormValue("required") == "on"
	if _, err := h.Auth.SetSecondFactorRequired(r.Context(), rq.session, on, auth.ClientOf(r)); err != nil {
		if code := keepwatch.ErrorCode(err); code == keepwatch.ECONFLICT {
			return h.renderSignInSettings(w, r, rq, statusOf(code), nil, keepwatch.ErrorMessage(err))
		}
		return err
	}
	redirectDone(w, r, "/settings/sign-in", "policySaved")
	return nil
}

func (h *Handler) setOIDC(w http.ResponseWriter, r *http.Request, rq *request) error {
	p := keepwatch.OIDCProvider{Issuer: r.PostFormValue("issuer"), ClientID: r.PostFormValue("client_id"),
		ClientSecret: r.PostFormValue("client_secret"), RoleClaim: r.PostFormValue("role_claim"),
		DefaultRole: keepwatch.Role(r.PostFormValue("default_role")),
		Domains:     strings.FieldsFunc(r.PostFormValue("domains"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' })}
	roleMap, err := keepwatch.ParseRoleMap(r.PostFormValue("role_map"))
	if err == nil {
		p.RoleMap = roleMap
		err = h.Auth.SetOIDCProvider(r.Context(), rq.session, p, auth.ClientOf(r))
	}
	if err != nil {
		if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ECONFLICT {
			p.ClientSecret = ""
			return h.renderSignInSettings(w, r, rq, statusOf(code), &p, keepwatch.ErrorMessage(err))
		}
		return err
	}
	redirectDone(w, r, "/settings/sign-in", "oidcSaved")
	return nil
}

func (h *Handler) removeOIDC(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.Auth.RemoveOIDCProvider(r.Context(), rq.session, auth.ClientOf(r)); err != nil {
		return err
	}
	redirectDone(w, r, "/settings/sign-in", "oidcRemoved")
	return nil
}
