package auth

import (
	"strconv"
	"time"

	"keepwatch"
)

// Registration limits. The first integrator to register an SLC holds it,
// so guessing SLCs would be a way to take other people's installations:
// every attempt (successful or not, from the API or the dashboard) takes a
// token per integrator and per source address. A burst covers
// registering a batch of real installations; the refill (600 an hour)
// leaves guessing hopeless. Per node, like the sign-in limits.
var (
	registrationIntegratorLimit = limit{burst: 100, every: 6 * time.Second}
	registrationAddressLimit    = limit{burst: 100, every: 6 * time.Second}
)

// RegistrationAttempt takes a token for one SLC registration by p from
// remote, or refuses it with rate_limited.
func (s *Service) RegistrationAttempt(p keepwatch.Principal, remote string) error {
	now := s.cfg.Now()
	wait := s.regIntegrators.Allow(strconv.FormatInt(p.IntegratorID, 10), now)
	if w := s.regAddresses.Allow(remote, now); w > wait {
		wait = w
	}
	if wait > 0 {
		s.log.Warn("SLC registration rate limited", "integrator", p.IntegratorID, "ip", remote)
		return &RegistrationLimited{Limited{wait}}
	}
	return nil
}

// RegistrationLimited is a registration refused by its rate limit.
type RegistrationLimited struct{ Limited }

func (e *RegistrationLimited) Error() string { return "rate limited: " + e.Message() }

// Message says how long to wait.
func (e *RegistrationLimited) Message() string {
	secs := int(e.Wait.Seconds() + 0.999)
	return "Too many registration attempts. Wait " + strconv.Itoa(secs) + " seconds and try again."
}

// As lets keepwatch.ErrorCode see it as ERATELIMITED.
func (e *RegistrationLimited) As(target any) bool {
	if t, ok := target.(**keepwatch.Error); ok {
		*t = keepwatch.Errorf(keepwatch.ERATELIMITED, "%s", e.Message())
		return true
	}
	return false
}
