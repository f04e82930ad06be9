package auth

import (
	"context"
	"fmt"

	"keepwatch"
)

// What a signed-in user manages on their account page, and what an owner
// decides for everyone: sessions, second factors, the second-factor
// requirement.

// Sessions lists the user's live sessions; current is the hash of the
// session asking.
func (s *Service) Sessions(ctx context.Context, ss keepwatch.Session, current []byte) ([]keepwatch.SessionInfo, error) {
	list, err := s.cfg.Store.UserSessions(ctx, ss.IntegratorID, ss.UserID, s.cfg.Now().Add(-s.cfg.IdleTimeout))
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Handle = SessionHandle(list[i].IDHash)
		list[i].Current = string(list[i].IDHash) == string(current)
	}
	return list, nil
}

// EndSession ends one of the user's sessions, named by its handle.
func (s *Service) EndSession(ctx context.Context, ss keepwatch.Session, current []byte, handle string, c Client) error {
	list, err := s.Sessions(ctx, ss, current)
	if err != nil {
		return err
	}
	for _, si := range list {
		if si.Handle != handle {
			continue
		}
		if err := s.cfg.Store.EndUserSession(ctx, ss.IntegratorID, ss.UserID, si.IDHash); err != nil {
			return err
		}
		s.audit(ctx, ss.IntegratorID, actor(ss.Email), "session.end", ss.Email,
			fmt.Sprintf("session from %s, signed in %s", si.RemoteAddr, si.CreatedAt.UTC().Format("2006-01-02 15:04 MST")), c)
		return nil
	}
	return keepwatch.Errorf(keepwatch.ENOTFOUND, "that session has already ended")
}

// EndOtherSessions ends every session of the user but the current one.
func (s *Service) EndOtherSessions(ctx context.Context, ss keepwatch.Session, current []byte, c Client) (int, error) {
	n, err := s.cfg.Store.EndOtherSessions(ctx, ss.IntegratorID, ss.UserID, current)
	if err != nil {
		return 0, err
	}
	s.audit(ctx, ss.IntegratorID, actor(ss.Email), "session.end_others", ss.Email, plural(n, "session", "sessions")+" ended", c)
	return n, nil
}

// LoginUser returns the signed-in user as sign-ins see them.
func (s *Service) LoginUser(ctx context.Context, ss keepwatch.Session) (keepwatch.LoginUser, error) {
	return s.cfg.Store.LoginUserByID(ctx, ss.IntegratorID, ss.UserID)
}

// Factors lists the user's second factors.
func (s *Service) Factors(ctx context.Context, integratorID, userID int64) ([]keepwatch.Factor, error) {
	return s.cfg.Store.Factors(ctx, integratorID, userID)
}

// RemoveFactor removes one of the signed-in user's second factors.
func (s *Service) RemoveFactor(ctx context.Context, ss keepwatch.Session, id int64, c Client) error {
	f, err := s.cfg.Store.RemoveFactor(ctx, ss.IntegratorID, ss.UserID, id)
	if err != nil {
		return err
	}
	what := "authenticator app"
	if f.Kind == keepwatch.FactorPasskey {
		what = "passkey “" + f.Name + "”"
	}
	s.audit(ctx, ss.IntegratorID, actor(ss.Email), "factor.remove", ss.Email, what, c)
	return nil
}

// SecondFactorRequired reports whether the integrator requires a second
// factor of everyone.
func (s *Service) SecondFactorRequired(ctx context.Context, integratorID int64) (bool, error) {
	return s.cfg.Store.SecondFactorRequired(ctx, integratorID)
}

// SetSecondFactorRequired turns the requirement on or off for the owner's
// integrator. The owner must have a second factor to turn it on (so that
// nobody locks themselves out by accident). Turning it on ends every
// session that signed in with a password alone of a user who has no second
// factor: those users enrol one at their next sign-in.
func (s *Service) SetSecondFactorRequired(ctx context.Context, ss keepwatch.Session, on bool, c Client) (int, error) {
	if ss.Role != keepwatch.RoleOwner {
		return 0, keepwatch.Errorf(keepwatch.EFORBIDDEN, "only an owner decides this")
	}
	if on {
		factors, err := s.cfg.Store.Factors(ctx, ss.IntegratorID, ss.UserID)
		if err != nil {
			return 0, err
		}
		if len(factors) == 0 {
			return 0, keepwatch.Errorf(keepwatch.ECONFLICT, "add a second factor to your own account first (under Account)")
		}
	}
	ended, err := s.cfg.Store.SetSecondFactorRequired(ctx, ss.IntegratorID, on)
	if err != nil {
		return 0, err
	}
	detail := "off"
	if on {
		detail = "on; password-only sessions ended: " + fmt.Sprint(ended)
	}
	s.audit(ctx, ss.IntegratorID, actor(ss.Email), "policy.second_factor", "everyone", detail, c)
	return ended, nil
}
