package web_test

import (
	"fmt"
	"net/url"
	"testing"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/secret"
)

// accountRouteCases are the access-control entries of the account pages
// and sign-in steps (see TestEveryDashboardRouteEnforcesRolesAndTenants).
// Alice's viewer, the first allowed caller of /account routes, has two
// second factors and a second session; the others have none, so each
// route also shows that one user cannot act on another's.
func accountRouteCases(t testing.TB, f *fixture) map[string]routeCase {
	viewer := f.users["alice-viewer"]
	_, err := f.a.Store.AddTOTP(ctx, f.alice, viewer, "app", []byte("sealed"), 0)
	must(t, err)
	passkey, err := f.a.Store.AddPasskey(ctx, keepwatch.Passkey{IntegratorID: f.alice, UserID: viewer, Name: "laptop",
		CredentialID: []byte("cred-" + fmt.Sprint(viewer)), Handle: []byte("handle"), Credential: []byte("{}")})
	must(t, err)
	other := f.session("alice-viewer")
	handle := auth.SessionHandle(secret.Hash(other.cookie))
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	newPassword := "a long and new password"
	return map[string]routeCase{
		"GET /account":                          {"/account", nil, []int{200}, 200},
		"POST /account/password":                {"/account/password", form("current", "wrong", "password", newPassword, "confirm", newPassword), []int{401}, 401},
		"POST /account/totp":                    {"/account/totp", form("setup", "forged", "code", "123456"), []int{400}, 400},
		"POST /account/factors/{id}/remove":     {fmt.Sprintf("/account/factors/%d/remove", passkey), form(), []int{303, 404}, 404},
		"POST /account/recovery-codes":          {"/account/recovery-codes", form(), []int{303, 409}, 409},
		"POST /account/passkeys/begin":          {"/account/passkeys/begin", form("name", "key"), []int{400}, 400},
		"POST /account/passkeys/finish":         {"/account/passkeys/finish", form("ceremony", "forged", "credential", "{}"), []int{400}, 400},
		"POST /account/sessions/{handle}/end":   {"/account/sessions/" + handle + "/end", form(), []int{303, 404}, 404},
		"POST /account/sessions/end-others":     {"/account/sessions/end-others", form(), []int{303}, 303},
		"GET /settings/sign-in":                 {"/settings/sign-in", nil, []int{200}, 200},
		"POST /settings/sign-in/second-factor":  {"/settings/sign-in/second-factor", form("required", "off"), []int{303}, 303},
		"POST /settings/sign-in/oidc":           {"/settings/sign-in/oidc", form("issuer", "https://127.0.0.1:9/realm", "client_id", "kw", "client_secret", "s"), []int{400}, 400},
		"POST /settings/sign-in/oidc/remove":    {"/settings/sign-in/oidc/remove", form(), []int{404}, 404},
		"GET /login/verify":                     {"/login/verify", nil, []int{303}, 303},
		"POST /login/verify":                    {"/login/verify", form("code", "123456"), []int{401}, 401},
		"POST /login/verify/passkey/begin":      {"/login/verify/passkey/begin", form(), []int{401}, 401},
		"POST /login/verify/passkey/finish":     {"/login/verify/passkey/finish", form("ceremony", "forged", "credential", "{}"), []int{401}, 401},
		"POST /login/passkey/begin":             {"/login/passkey/begin", form(), []int{400}, 400},
		"POST /login/passkey/finish":            {"/login/passkey/finish", form("ceremony", "forged", "credential", "{}"), []int{400}, 400},
		"GET /login/oidc":                       {"/login/oidc?integrator=alice", nil, []int{303}, 303},
		"GET /login/oidc/{integrator}":          {"/login/oidc/alice", nil, []int{404}, 404},
		"GET /login/oidc/{integrator}/callback": {"/login/oidc/alice/callback?state=forged&code=forged", nil, []int{401}, 401},
		"GET /password-reset":                   {"/password-reset", nil, []int{200}, 200},
		"POST /password-reset":                  {"/password-reset", form("email", "nobody@example.com"), []int{503}, 503},
		"GET /password-reset/{token}":           {"/password-reset/forged", nil, []int{401}, 401},
		"POST /password-reset/{token}":          {"/password-reset/forged", form("password", newPassword, "confirm", newPassword), []int{401}, 401},
	}
}
