package auth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
)

// SecondFactorNeeded is a password accepted for a user who must now prove a
// second factor (Enrol false) or, because the integrator requires one and
// the user has none, enrol one (Enrol true). No session exists yet; Flow is
// the value of the sign-in cookie that carries the user to the next step.
type SecondFactorNeeded struct {
	Flow  string
	Enrol bool
}

func (e *SecondFactorNeeded) Error() string { return "a second factor is needed" }

// afterPassword opens a session for a user whose password was right, or
// starts the second-factor step.
func (s *Service) afterPassword(ctx context.Context, u keepwatch.LoginUser, c Client) (string, error) {
	factors, err := s.cfg.Store.Factors(ctx, u.IntegratorID, u.ID)
	if err != nil {
		return "", err
	}
	kind := keepwatch.FlowSecondFactor
	if len(factors) == 0 {
		required, err := s.cfg.Store.SecondFactorRequired(ctx, u.IntegratorID)
		if err != nil {
			return "", err
		}
		if !required {
			return s.openSession(ctx, u, keepwatch.MethodPassword, c)
		}
		kind = keepwatch.FlowEnrol
	}
	value, err := s.newFlow(ctx, keepwatch.AuthFlow{Kind: kind, UserID: u.ID, IntegratorID: u.IntegratorID}, signInFlowTTL)
	if err != nil {
		return "", err
	}
	return "", &SecondFactorNeeded{Flow: value, Enrol: kind == keepwatch.FlowEnrol}
}

// newFlow stores a sign-in in progress and returns the value that finds it.
func (s *Service) newFlow(ctx context.Context, f keepwatch.AuthFlow, ttl time.Duration) (string, error) {
	value := RandomToken()
	f.ExpiresAt = s.cfg.Now().Add(ttl)
	return value, s.cfg.Store.CreateAuthFlow(ctx, secret.Hash(value), f)
}

// loginFailed audits a wrong password for an existing account, to that
// account's integrator, after the answer (so that the answer takes as long
// as for an unknown address).
func (s *Service) loginFailed(u keepwatch.LoginUser, c Client) {
	s.later("audit failed sign-in", func(ctx context.Context) {
		s.audit(ctx, u.IntegratorID, "anonymous", "session.login_failed", u.Email, "wrong password", c)
	})
}

// Pending is a sign-in waiting for its second factor, as its page shows it.
type Pending struct {
	User     keepwatch.LoginUser
	Enrol    bool // no factor yet: enrol one to finish signing in
	TOTP     bool
	Passkeys int
	Recovery int // unused recovery codes
}

// PendingSignIn returns the sign-in in progress of the request's cookie.
func (s *Service) PendingSignIn(ctx context.Context, value string) (Pending, error) {
	f, err := s.pendingFlow(ctx, value)
	if err != nil {
		return Pending{}, err
	}
	p := Pending{Enrol: f.Kind == keepwatch.FlowEnrol}
	if p.User, err = s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID); err != nil {
		return p, s.flowEnded(err)
	}
	factors, err := s.cfg.Store.Factors(ctx, f.IntegratorID, f.UserID)
	if err != nil {
		return p, err
	}
	for _, fc := range factors {
		switch fc.Kind {
		case keepwatch.FactorTOTP:
			p.TOTP = true
		case keepwatch.FactorPasskey:
			p.Passkeys++
		}
	}
	if p.Recovery, err = s.cfg.Store.RecoveryCodesLeft(ctx, f.IntegratorID, f.UserID); err != nil {
		return p, err
	}
	return p, nil
}

var (
	errSignInAgain  = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "This sign-in took too long or was already completed. Please sign in again.")
	errTooManyCodes = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "Too many wrong codes. Sign in again.")
)

// SignInEnded reports whether err means the sign-in in progress is over
// and must start again from the password.
func SignInEnded(err error) bool {
	return errors.Is(err, errSignInAgain) || errors.Is(err, errTooManyCodes)
}

func (s *Service) flowEnded(err error) error {
	if c := keepwatch.ErrorCode(err); c == keepwatch.ENOTFOUND || c == keepwatch.EUNAUTHORIZED {
		return errSignInAgain
	}
	return err
}

// pendingFlow finds a second-factor or enrolment flow.
func (s *Service) pendingFlow(ctx context.Context, value string) (keepwatch.AuthFlow, error) {
	if value == "" {
		return keepwatch.AuthFlow{}, errSignInAgain
	}
	h := secret.Hash(value)
	f, err := s.cfg.Store.AuthFlow(ctx, h, keepwatch.FlowSecondFactor)
	if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
		f, err = s.cfg.Store.AuthFlow(ctx, h, keepwatch.FlowEnrol)
	}
	if err != nil {
		return f, s.flowEnded(err)
	}
	return f, nil
}

var errWrongCode = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "That code is not right. Check the time on your phone, or use a recovery code.")

// VerifySecondFactor finishes a sign-in with a code from the authenticator
// app or a recovery code, and returns the new session's cookie value.
// Wrong codes are limited per user and per sign-in; after five the
// sign-in starts over.
func (s *Service) VerifySecondFactor(ctx context.Context, value, code string, c Client) (string, keepwatch.LoginUser, error) {
	f, err := s.pendingFlow(ctx, value)
	if err != nil {
		return "", keepwatch.LoginUser{}, err
	}
	if f.Kind != keepwatch.FlowSecondFactor {
		return "", keepwatch.LoginUser{}, keepwatch.Errorf(keepwatch.EINVALID, "set up a second factor first")
	}
	u, err := s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID)
	if err != nil {
		return "", u, s.flowEnded(err)
	}
	now := s.cfg.Now()
	if wait := s.acct.factorTries.Allow("user:"+u.Email, now); wait > 0 {
		return "", u, &Limited{wait}
	}
	method, ok, err := s.checkCode(ctx, u, code, c)
	if err != nil {
		return "", u, err
	}
	if !ok {
		n, ferr := s.cfg.Store.AuthFlowFailed(ctx, secret.Hash(value))
		s.audit(ctx, u.IntegratorID, actor(u.Email), "session.second_factor_failed", u.Email, "wrong code", c)
		if ferr == nil && n >= flowMaxAttempts {
			s.cfg.Store.DeleteAuthFlow(ctx, secret.Hash(value))
			return "", u, errTooManyCodes
		}
		return "", u, errWrongCode
	}
	return s.finishSignIn(ctx, value, keepwatch.FlowSecondFactor, u, method, c)
}

// checkCode checks a TOTP code (six digits) or a recovery code and spends
// it.
func (s *Service) checkCode(ctx context.Context, u keepwatch.LoginUser, code string, c Client) (string, bool, error) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) == 6 && strings.Trim(code, "0123456789") == "" {
		ok, err := s.checkTOTP(ctx, u, code)
		return keepwatch.MethodPasswordTOTP, ok, err
	}
	norm, valid := normalizeRecoveryCode(code)
	if !valid {
		return "", false, nil
	}
	left, err := s.cfg.Store.UseRecoveryCode(ctx, u.IntegratorID, u.ID, secret.Hash(norm), s.cfg.Now())
	if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "recovery_code.use", u.Email, plural(left, "code", "codes")+" left", c)
	return keepwatch.MethodPasswordRecovery, true, nil
}

// finishSignIn ends a flow (once) and opens the session.
func (s *Service) finishSignIn(ctx context.Context, value, kind string, u keepwatch.LoginUser, method string, c Client) (string, keepwatch.LoginUser, error) {
	if _, err := s.cfg.Store.TakeAuthFlow(ctx, secret.Hash(value), kind); err != nil {
		return "", u, s.flowEnded(err)
	}
	session, err := s.openSession(ctx, u, method, c)
	if err != nil {
		return "", u, err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "session.login", u.Email, "method "+method, c)
	return session, u, nil
}

// ceremony is what a WebAuthn ceremony keeps between its two requests.
type ceremony struct {
	Session json.RawMessage `json:"session"`
	Handle  []byte          `json:"handle,omitempty"`
	Name    string          `json:"name,omitempty"`
}
