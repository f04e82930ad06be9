package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"keepwatch"
	"keepwatch/internal/secret"
)

// A passkey (WebAuthn, discoverable, with user verification) serves as a
// second factor after a password, or alone: it proves possession of a
// device and, through its PIN or biometric, the person.

// waUser is a keepwatch user as the WebAuthn library sees it.
type waUser struct {
	handle []byte
	email  string
	keys   []keepwatch.Passkey
	creds  []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.email }
func (u *waUser) WebAuthnDisplayName() string                { return u.email }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// passkeyOf returns the stored passkey a credential id belongs to.
func (u *waUser) passkeyOf(id []byte) (keepwatch.Passkey, bool) {
	for _, p := range u.keys {
		if bytes.Equal(p.CredentialID, id) {
			return p, true
		}
	}
	return keepwatch.Passkey{}, false
}

func newWAUser(email string, keys []keepwatch.Passkey) (*waUser, error) {
	u := &waUser{email: email, keys: keys}
	for _, p := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(p.Credential, &c); err != nil {
			return nil, err
		}
		u.creds = append(u.creds, c)
		u.handle = p.Handle
	}
	return u, nil
}

var errPasskeysUnavailable = keepwatch.Errorf(keepwatch.EINVALID,
	"passkeys need keepwatch to be reached by a host name (such as https://keepwatch.example.com or http://localhost:8080), not an IP address; see --public-url")

// relyingParty is keepwatch as WebAuthn sees it: its public address.
func (s *Service) relyingParty() (*webauthn.WebAuthn, error) {
	u, err := url.Parse(s.cfg.PublicURL())
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return nil, errPasskeysUnavailable
	}
	origin := u.Scheme + "://" + u.Host
	if v, ok := s.acct.relyingParties.Load(origin); ok {
		return v.(*webauthn.WebAuthn), nil
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: u.Hostname(), RPDisplayName: "keepwatch", RPOrigins: []string{origin},
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, UserVerification: protocol.VerificationPreferred,
		},
	})
	if err != nil {
		return nil, err
	}
	s.acct.relyingParties.Store(origin, wa)
	return wa, nil
}

// PasskeysAvailable reports whether passkeys can be used at the public
// address (WebAuthn needs a host name).
func (s *Service) PasskeysAvailable() bool {
	_, err := s.relyingParty()
	return err == nil
}

var errCeremony = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "the passkey was not accepted; try again")

// saveCeremony stores a ceremony's session data under a new flow.
func (s *Service) saveCeremony(ctx context.Context, kind string, u keepwatch.LoginUser, sd *webauthn.SessionData, c ceremony) (string, error) {
	var err error
	if c.Session, err = json.Marshal(sd); err != nil {
		return "", err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return s.newFlow(ctx, keepwatch.AuthFlow{Kind: kind, UserID: u.ID, IntegratorID: u.IntegratorID, Data: data}, ceremonyTTL)
}

// takeCeremony ends a ceremony's flow and returns its data.
func (s *Service) takeCeremony(ctx context.Context, value, kind string) (keepwatch.AuthFlow, ceremony, webauthn.SessionData, error) {
	var c ceremony
	var sd webauthn.SessionData
	if value == "" || len(value) > 100 {
		return keepwatch.AuthFlow{}, c, sd, errCeremony
	}
	f, err := s.cfg.Store.TakeAuthFlow(ctx, secret.Hash(value), kind)
	if err != nil {
		return f, c, sd, errCeremony
	}
	if err := json.Unmarshal(f.Data, &c); err != nil {
		return f, c, sd, err
	}
	return f, c, sd, json.Unmarshal(c.Session, &sd)
}

// BeginPasskeyRegistration starts adding a passkey named name to u's
// account. It returns the options for navigator.credentials.create (JSON)
// and the ceremony's handle, which the browser sends back with the result.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, u keepwatch.LoginUser, name string) ([]byte, string, error) {
	name, err := keepwatch.ValidFactorName(name)
	if err != nil {
		return nil, "", err
	}
	wa, err := s.relyingParty()
	if err != nil {
		return nil, "", err
	}
	keys, err := s.cfg.Store.Passkeys(ctx, u.IntegratorID, u.ID)
	if err != nil {
		return nil, "", err
	}
	user, err := newWAUser(u.Email, keys)
	if err != nil {
		return nil, "", err
	}
	if user.handle == nil {
		// A random user handle: the authenticator stores it and gives it
		// back at a passwordless sign-in; it says nothing about the user.
		user.handle = make([]byte, 32)
		rand.Read(user.handle)
	}
	creation, sd, err := wa.BeginRegistration(user, webauthn.WithExclusions(webauthn.Credentials(user.creds).CredentialDescriptors()))
	if err != nil {
		return nil, "", err
	}
	value, err := s.saveCeremony(ctx, keepwatch.FlowRegister, u, sd, ceremony{Handle: user.handle, Name: name})
	if err != nil {
		return nil, "", err
	}
	options, err := json.Marshal(creation)
	return options, value, err
}

// FinishPasskeyRegistration checks the browser's answer to a registration
// ceremony and stores the passkey.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, u keepwatch.LoginUser, value string, response []byte, c Client) error {
	wa, err := s.relyingParty()
	if err != nil {
		return err
	}
	f, cer, sd, err := s.takeCeremony(ctx, value, keepwatch.FlowRegister)
	if err != nil {
		return err
	}
	if f.UserID != u.ID || f.IntegratorID != u.IntegratorID {
		return errCeremony
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		s.log.Info("passkey registration refused", "err", err)
		return errCeremony
	}
	keys, err := s.cfg.Store.Passkeys(ctx, u.IntegratorID, u.ID)
	if err != nil {
		return err
	}
	user, err := newWAUser(u.Email, keys)
	if err != nil {
		return err
	}
	user.handle = cer.Handle
	cred, err := wa.CreateCredential(user, sd, parsed)
	if err != nil {
		s.log.Info("passkey registration refused", "err", err)
		return errCeremony
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.AddPasskey(ctx, keepwatch.Passkey{UserID: u.ID, IntegratorID: u.IntegratorID, Name: cer.Name,
		CredentialID: cred.ID, Handle: cer.Handle, Credential: b}); err != nil {
		return err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "factor.add", u.Email, "passkey “"+cer.Name+"”", c)
	return nil
}

// BeginPasskeySignIn starts a passkey sign-in. With pending "" it is a
// passwordless sign-in: any registered passkey, which must verify its
// user. With the handle of a sign-in waiting for its second factor, it asks
// for one of that user's passkeys.
func (s *Service) BeginPasskeySignIn(ctx context.Context, pending string) ([]byte, string, error) {
	wa, err := s.relyingParty()
	if err != nil {
		return nil, "", err
	}
	var assertion *protocol.CredentialAssertion
	var sd *webauthn.SessionData
	var u keepwatch.LoginUser
	if pending == "" {
		assertion, sd, err = wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	} else {
		f, ferr := s.pendingFlow(ctx, pending)
		if ferr != nil {
			return nil, "", ferr
		}
		if f.Kind != keepwatch.FlowSecondFactor {
			return nil, "", keepwatch.Errorf(keepwatch.EINVALID, "set up a second factor first")
		}
		if u, err = s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID); err != nil {
			return nil, "", s.flowEnded(err)
		}
		keys, kerr := s.cfg.Store.Passkeys(ctx, u.IntegratorID, u.ID)
		if kerr != nil {
			return nil, "", kerr
		}
		if len(keys) == 0 {
			return nil, "", keepwatch.Errorf(keepwatch.EINVALID, "you have no passkey; use your authenticator app or a recovery code")
		}
		user, uerr := newWAUser(u.Email, keys)
		if uerr != nil {
			return nil, "", uerr
		}
		assertion, sd, err = wa.BeginLogin(user)
	}
	if err != nil {
		return nil, "", err
	}
	value, err := s.saveCeremony(ctx, keepwatch.FlowPasskey, u, sd, ceremony{})
	if err != nil {
		return nil, "", err
	}
	options, err := json.Marshal(assertion)
	return options, value, err
}

// FinishPasskeySignIn checks the browser's answer to a passkey sign-in and
// opens the session.
func (s *Service) FinishPasskeySignIn(ctx context.Context, pending, value string, response []byte, c Client) (string, keepwatch.LoginUser, error) {
	wa, err := s.relyingParty()
	if err != nil {
		return "", keepwatch.LoginUser{}, err
	}
	f, _, sd, err := s.takeCeremony(ctx, value, keepwatch.FlowPasskey)
	if err != nil {
		return "", keepwatch.LoginUser{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		s.log.Info("passkey sign-in refused", "err", err)
		return "", keepwatch.LoginUser{}, errCeremony
	}
	var u keepwatch.LoginUser
	var user *waUser
	var cred *webauthn.Credential
	if f.UserID == 0 {
		// Passwordless: the authenticator names the user by handle.
		var found keepwatch.Passkey
		_, cred, err = wa.ValidatePasskeyLogin(func(rawID, handle []byte) (webauthn.User, error) {
			keys, err := s.cfg.Store.PasskeysByHandle(ctx, handle)
			if err != nil {
				return nil, err
			}
			if u, err = s.cfg.Store.LoginUserByID(ctx, keys[0].IntegratorID, keys[0].UserID); err != nil {
				return nil, err
			}
			user, err = newWAUser(u.Email, keys)
			found = keys[0]
			return user, err
		}, sd, parsed)
		if err == nil && (found.UserID != u.ID || !cred.Flags.UserVerified) {
			err = errCeremony
		}
	} else {
		pf, perr := s.pendingFlow(ctx, pending)
		if perr != nil {
			return "", u, perr
		}
		if pf.UserID != f.UserID || pf.Kind != keepwatch.FlowSecondFactor {
			return "", u, errCeremony
		}
		if u, err = s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID); err != nil {
			return "", u, s.flowEnded(err)
		}
		keys, kerr := s.cfg.Store.Passkeys(ctx, u.IntegratorID, u.ID)
		if kerr != nil {
			return "", u, kerr
		}
		if user, err = newWAUser(u.Email, keys); err != nil {
			return "", u, err
		}
		cred, err = wa.ValidateLogin(user, sd, parsed)
	}
	if err != nil {
		s.log.Info("passkey sign-in refused", "err", err)
		return "", keepwatch.LoginUser{}, errCeremony
	}
	if p, ok := user.passkeyOf(cred.ID); ok {
		if b, err := json.Marshal(cred); err == nil {
			if err := s.cfg.Store.UsePasskey(ctx, p.IntegratorID, p.ID, b, s.cfg.Now()); err != nil {
				s.log.Warn("store passkey use", "err", err)
			}
		}
	}
	if f.UserID == 0 {
		session, err := s.openSession(ctx, u, keepwatch.MethodPasskey, c)
		if err != nil {
			return "", u, err
		}
		s.audit(ctx, u.IntegratorID, actor(u.Email), "session.login", u.Email, "method "+keepwatch.MethodPasskey, c)
		return session, u, nil
	}
	return s.finishSignIn(ctx, pending, keepwatch.FlowSecondFactor, u, keepwatch.MethodPasswordPasskey, c)
}

// BeginEnrolPasskey starts registering a passkey for a sign-in that must
// enrol a second factor.
func (s *Service) BeginEnrolPasskey(ctx context.Context, pending, name string) ([]byte, string, error) {
	u, err := s.enrolUser(ctx, pending)
	if err != nil {
		return nil, "", err
	}
	return s.BeginPasskeyRegistration(ctx, u, name)
}

// FinishEnrolPasskey stores the passkey and opens the session.
func (s *Service) FinishEnrolPasskey(ctx context.Context, pending, value string, response []byte, c Client) (string, keepwatch.LoginUser, error) {
	u, err := s.enrolUser(ctx, pending)
	if err != nil {
		return "", u, err
	}
	if err := s.FinishPasskeyRegistration(ctx, u, value, response, c); err != nil {
		return "", u, err
	}
	return s.finishSignIn(ctx, pending, keepwatch.FlowEnrol, u, keepwatch.MethodPasswordPasskey, c)
}

func (s *Service) enrolUser(ctx context.Context, pending string) (keepwatch.LoginUser, error) {
	f, err := s.pendingFlow(ctx, pending)
	if err != nil {
		return keepwatch.LoginUser{}, err
	}
	if f.Kind != keepwatch.FlowEnrol {
		return keepwatch.LoginUser{}, keepwatch.Errorf(keepwatch.ECONFLICT, "you have a second factor already; use it to sign in")
	}
	u, err := s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID)
	return u, s.flowEnded(err)
}
