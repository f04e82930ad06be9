package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"keepwatch"
	"keepwatch/internal/secret"
)

// Sign-in with the integrator's own identity provider: OpenID Connect,
// authorization code flow with PKCE, state and nonce. The owner configures
// the provider; people are matched by verified e-mail the first time and by
// the provider's subject afterwards, or created when the e-mail's domain is
// allowed. Their role comes from a claim when it maps, else the default.

// errOIDCFailed is what a person sees when the provider's answer is not
// usable; the log says why.
var errOIDCFailed = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "company sign-in did not succeed; try again, or ask an owner of your keepwatch account")

// providerTTL is how long a provider's discovery document is trusted.
const providerTTL = time.Hour

type cachedProvider struct {
	issuer    string
	updatedAt time.Time
	fetched   time.Time
	provider  *oidc.Provider
}

// oidcFlow is what a round trip to the identity provider keeps.
type oidcFlow struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Next     string `json:"next"`
}

func secretAAD(integratorID int64) string {
	return "oidc-client-secret:" + strconv.FormatInt(integratorID, 10)
}

// discover returns the identity provider's metadata, cached for an hour.
func (s *Service) discover(ctx context.Context, p keepwatch.OIDCProvider) (*oidc.Provider, error) {
	a := s.acct
	a.oidcMu.Lock()
	c := a.providers[p.IntegratorID]
	a.oidcMu.Unlock()
	now := time.Now()
	if c != nil && c.issuer == p.Issuer && c.updatedAt.Equal(p.UpdatedAt) && now.Sub(c.fetched) < providerTTL {
		return c.provider, nil
	}
	// The provider keeps the client for fetching its signing keys later.
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, a.http), p.Issuer)
	if err != nil {
		return nil, err
	}
	a.oidcMu.Lock()
	a.providers[p.IntegratorID] = &cachedProvider{issuer: p.Issuer, updatedAt: p.UpdatedAt, fetched: now, provider: prov}
	a.oidcMu.Unlock()
	return prov, nil
}

// OIDCRedirectURL is the callback address to register at the identity
// provider for an integrator.
func (s *Service) OIDCRedirectURL(integratorName string) string {
	return strings.TrimRight(s.cfg.PublicURL(), "/") + "/login/oidc/" + url.PathEscape(integratorName) + "/callback"
}

// OIDCSignInURL is the address an integrator's people start from.
func (s *Service) OIDCSignInURL(integratorName string) string {
	return strings.TrimRight(s.cfg.PublicURL(), "/") + "/login/oidc/" + url.PathEscape(integratorName)
}

func (s *Service) oauthConfig(ctx context.Context, integratorName string, p keepwatch.OIDCProvider, sealed []byte) (*oidc.Provider, *oauth2.Config, error) {
	clientSecret, err := s.acct.sealer.Open(sealed, secretAAD(p.IntegratorID))
	if err != nil {
		return nil, nil, err
	}
	prov, err := s.discover(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return prov, &oauth2.Config{ClientID: p.ClientID, ClientSecret: string(clientSecret), Endpoint: prov.Endpoint(),
		RedirectURL: s.OIDCRedirectURL(integratorName), Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}, nil
}

// StartOIDC begins a company sign-in for the integrator named name. It
// returns the provider's authorization URL and the sign-in cookie's value.
func (s *Service) StartOIDC(ctx context.Context, name, next string) (string, string, error) {
	p, sealed, err := s.cfg.Store.OIDCProviderByName(ctx, name)
	if err != nil {
		return "", "", err
	}
	_, oc, err := s.oauthConfig(ctx, name, p, sealed)
	if err != nil {
		s.log.Warn("company sign-in: identity provider unusable", "integrator", p.IntegratorID, "err", err)
		return "", "", keepwatch.Errorf(keepwatch.EUNAVAILABLE, "your company's identity provider cannot be reached; try again later")
	}
	f := oidcFlow{State: RandomToken(), Nonce: RandomToken(), Verifier: oauth2.GenerateVerifier(), Next: next}
	data, _ := json.Marshal(f)
	value, err := s.newFlow(ctx, keepwatch.AuthFlow{Kind: keepwatch.FlowOIDC, IntegratorID: p.IntegratorID, Data: data}, signInFlowTTL)
	if err != nil {
		return "", "", err
	}
	return oc.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), value, nil
}

// oidcClaims are the claims keepwatch reads.
type oidcClaims struct {
	Subject       string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"` // some providers send "true"
	Nonce         string `json:"nonce"`
}

func verified(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// FinishOIDC completes a company sign-in from the provider's redirect:
// the flow of the sign-in cookie (once), the state, the code exchanged
// with the PKCE verifier, the ID token's signature, audience and nonce, a
// verified e-mail in an allowed domain. It returns the session cookie's
// value and where to go next.
func (s *Service) FinishOIDC(ctx context.Context, name, value, state, code string, c Client) (string, string, error) {
	if value == "" {
		return "", "", errSignInAgain
	}
	f, err := s.cfg.Store.TakeAuthFlow(ctx, secret.Hash(value), keepwatch.FlowOIDC)
	if err != nil {
		return "", "", errSignInAgain
	}
	var fl oidcFlow
	if err := json.Unmarshal(f.Data, &fl); err != nil {
		return "", "", err
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(fl.State)) != 1 || code == "" {
		return "", "", errSignInAgain
	}
	p, sealed, err := s.cfg.Store.OIDCProviderByName(ctx, name)
	if err != nil || p.IntegratorID != f.IntegratorID {
		return "", "", errSignInAgain
	}
	fail := func(why string, err error) (string, string, error) {
		s.log.Warn("company sign-in refused", "integrator", p.IntegratorID, "why", why, "err", err)
		return "", "", errOIDCFailed
	}
	prov, oc, err := s.oauthConfig(ctx, name, p, sealed)
	if err != nil {
		return fail("provider", err)
	}
	hctx := oidc.ClientContext(ctx, s.acct.http)
	tok, err := oc.Exchange(hctx, code, oauth2.VerifierOption(fl.Verifier))
	if err != nil {
		return fail("code exchange", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return fail("no id_token", nil)
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(hctx, raw)
	if err != nil {
		return fail("id_token", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(fl.Nonce)) != 1 {
		return fail("nonce", nil)
	}
	var cl oidcClaims
	all := map[string]any{}
	if err := idt.Claims(&cl); err != nil {
		return fail("claims", err)
	}
	idt.Claims(&all)
	// Providers that keep the e-mail or the role claim out of the ID token
	// give them at the userinfo endpoint.
	if _, hasRole := all[p.RoleClaim]; cl.Email == "" || p.RoleClaim != "" && !hasRole {
		if ui, err := prov.UserInfo(hctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			var ucl oidcClaims
			uall := map[string]any{}
			ui.Claims(&ucl)
			ui.Claims(&uall)
			if cl.Email == "" {
				cl.Email, cl.EmailVerified = ucl.Email, ucl.EmailVerified
			}
			if v, ok := uall[p.RoleClaim]; ok && p.RoleClaim != "" {
				all[p.RoleClaim] = v
			}
		}
	}
	email, err := keepwatch.NormalizeEmail(cl.Email)
	if err != nil || !verified(cl.EmailVerified) {
		s.log.Warn("company sign-in refused: no verified e-mail", "integrator", p.IntegratorID)
		return "", "", keepwatch.Errorf(keepwatch.EFORBIDDEN, "your company's identity provider did not confirm your e-mail address, so keepwatch cannot tell who you are")
	}
	if !p.EmailAllowed(email) {
		s.log.Warn("company sign-in refused: domain", "integrator", p.IntegratorID)
		return "", "", keepwatch.Errorf(keepwatch.EFORBIDDEN, "addresses of this domain may not sign in to this keepwatch account")
	}
	role, mapped := p.RoleFor(all[p.RoleClaim])
	u, created, err := s.oidcUser(ctx, p, idt.Subject, email, role, mapped, c)
	if err != nil {
		return "", "", err
	}
	session, err := s.openSession(ctx, u, keepwatch.MethodOIDC, c)
	if err != nil {
		return "", "", err
	}
	detail := "method oidc"
	if created {
		detail += "; user created as " + string(u.Role)
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "session.login", u.Email, detail, c)
	return session, fl.Next, nil
}

// oidcUser finds (by subject, then by e-mail) or creates the user a
// provider's subject is, and applies the mapped role.
func (s *Service) oidcUser(ctx context.Context, p keepwatch.OIDCProvider, subject, email string, role keepwatch.Role, mapped bool, c Client) (keepwatch.LoginUser, bool, error) {
	st := s.cfg.Store
	created := false
	u, err := st.OIDCUser(ctx, p.IntegratorID, p.Issuer, subject)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		// E-mail addresses are unique within an integrator: the provider's
		// integrator's user with this address, if any, is the one.
		users, lerr := st.UsersForLogin(ctx, email)
		if lerr != nil {
			return u, false, lerr
		}
		found := false
		for _, cand := range users {
			if cand.IntegratorID == p.IntegratorID {
				u, found = cand, true
			}
		}
		if !found {
			if !mapped {
				role = p.DefaultRole
			}
			id, cerr := st.CreateUser(ctx, p.IntegratorID, email, "", role)
			if cerr != nil {
				return u, false, cerr
			}
			u = keepwatch.LoginUser{ID: id, IntegratorID: p.IntegratorID, Email: email, Role: role}
			created, mapped = true, false
			s.audit(ctx, p.IntegratorID, "oidc:"+p.Issuer, "user.add", email, "role "+string(role)+" (company sign-in)", c)
		}
		if err := st.LinkOIDCUser(ctx, p.IntegratorID, p.Issuer, subject, u.ID); err != nil {
			return u, false, err
		}
	} else if err != nil {
		return u, false, err
	}
	if mapped && role != u.Role {
		if err := st.SetUserRole(ctx, u.IntegratorID, u.ID, role); err != nil {
			// The last owner stays an owner; anything else is a failure.
			if keepwatch.ErrorCode(err) != keepwatch.ECONFLICT {
				return u, false, err
			}
		} else {
			s.audit(ctx, u.IntegratorID, "oidc:"+p.Issuer, "user.role", u.Email, string(u.Role)+" → "+string(role)+" (from the identity provider)", c)
			u.Role = role
		}
	}
	return u, created, nil
}

// OIDCSettings is an integrator's identity provider as its owners see it.
type OIDCSettings struct {
	Provider  keepwatch.OIDCProvider
	SignInURL string
	Redirect  string
}

// OIDCProvider returns the owner's view of the integrator's provider;
// ok is false when there is none.
func (s *Service) OIDCProvider(ctx context.Context, integratorID int64) (keepwatch.OIDCProvider, bool, error) {
	p, _, err := s.cfg.Store.OIDCProvider(ctx, integratorID)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		return p, false, nil
	}
	return p, err == nil, err
}

// SetOIDCProvider stores the owner's integrator's identity provider, after
// checking that its discovery document answers. An empty client secret
// keeps the one stored before; the secret is sealed and never shown again.
func (s *Service) SetOIDCProvider(ctx context.Context, ss keepwatch.Session, p keepwatch.OIDCProvider, c Client) error {
	if ss.Role != keepwatch.RoleOwner {
		return keepwatch.Errorf(keepwatch.EFORBIDDEN, "only an owner decides this")
	}
	p.IntegratorID, p.UpdatedBy, p.UpdatedAt = ss.IntegratorID, actor(ss.Email), s.cfg.Now()
	p, err := p.Validate()
	if err != nil {
		return err
	}
	var sealed []byte
	if p.ClientSecret != "" {
		sealed = s.acct.sealer.Seal([]byte(p.ClientSecret), secretAAD(p.IntegratorID))
	}
	if _, err := oidc.NewProvider(oidc.ClientContext(ctx, s.acct.http), p.Issuer); err != nil {
		s.log.Info("identity provider discovery failed", "integrator", p.IntegratorID, "err", err)
		return keepwatch.Errorf(keepwatch.EINVALID, "keepwatch could not read %s/.well-known/openid-configuration; check the issuer", p.Issuer)
	}
	if err := s.cfg.Store.SetOIDCProvider(ctx, p, sealed); err != nil {
		return err
	}
	s.acct.oidcMu.Lock()
	delete(s.acct.providers, p.IntegratorID)
	s.acct.oidcMu.Unlock()
	detail := "issuer " + p.Issuer + ", client " + p.ClientID
	if sealed != nil {
		detail += ", new client secret"
	}
	s.audit(ctx, ss.IntegratorID, actor(ss.Email), "oidc.configure", p.Issuer, detail, c)
	return nil
}

// RemoveOIDCProvider turns company sign-in off. Users it created keep
// their accounts (a reset link gives them a password).
func (s *Service) RemoveOIDCProvider(ctx context.Context, ss keepwatch.Session, c Client) error {
	if ss.Role != keepwatch.RoleOwner {
		return keepwatch.Errorf(keepwatch.EFORBIDDEN, "only an owner decides this")
	}
	if err := s.cfg.Store.DeleteOIDCProvider(ctx, ss.IntegratorID); err != nil {
		return err
	}
	s.acct.oidcMu.Lock()
	delete(s.acct.providers, ss.IntegratorID)
	s.acct.oidcMu.Unlock()
	s.audit(ctx, ss.IntegratorID, actor(ss.Email), "oidc.remove", "", "company sign-in turned off", c)
	return nil
}

// IntegratorName returns the name of an integrator, which its company
// sign-in address carries.
func (s *Service) IntegratorName(ctx context.Context, integratorID int64) (string, error) {
	return s.cfg.Store.IntegratorName(ctx, integratorID)
}
