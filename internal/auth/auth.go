// Package auth decides who makes a request — a person signed in to the
// dashboard (a session cookie, with a CSRF token for every change) or an
// API token (a bearer header) — signs people in and out under rate limits,
// and writes the audit log. The REST API and the dashboard both use it, so
// the two doors check the same things the same way.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/mail"
	"keepwatch/internal/ratelimit"
	"keepwatch/internal/secret"
)

// SessionCookie names the dashboard's session cookie.
const SessionCookie = "kw_session"

// touchEvery bounds how often a session's last use is written: often
// enough for the idle timeout, rarely enough that page views are reads.
const touchEvery = time.Minute

// Store is what auth keeps in the database.
type Store interface {
	UsersForLogin(ctx context.Context, email string) ([]keepwatch.LoginUser, error)
	CreateSession(ctx context.Context, n keepwatch.NewSession) error
	SessionByHash(ctx context.Context, idHash []byte, idleSince time.Time) (keepwatch.Session, error)
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	RevokeSession(ctx context.Context, idHash []byte) error
	DeleteEndedSessions(ctx context.Context, before time.Time) error
	PrincipalByTokenHash(ctx context.Context, hash []byte) (keepwatch.Principal, error)
	Audit(ctx context.Context, e keepwatch.AuditEntry) error
	CredentialStore
}

// Config configures a Service.
type Config struct {
	Store  Store
	Now    func() time.Time
	Logger *slog.Logger
	// IdleTimeout ends a session unused for this long (default 12 h);
	// MaxAge ends any session this long after sign-in (default 7 days).
	IdleTimeout, MaxAge time.Duration
	// MaxStreams bounds the event streams one user or token holds open on
	// this node (default DefaultMaxStreams).
	MaxStreams int

	// Accounts (accounts.go and the files beside it): the relay that
	// mails reset links, the dashboard's public address (reset links,
	// passkeys, identity-provider redirects), the key that seals TOTP
	// seeds and client secrets, and the client that reaches integrators'
	// identity providers (nil: public addresses only).
	Mail      mail.Config
	PublicURL func() string
	Sealer    Sealer
	HTTP      *http.Client
}

// Sign-in limits: a token bucket per source address (every attempt) and
// per account (every attempt, given back on success): enough for people
// who mistype, too few for guessing. They are per node; a cluster
// multiplies the allowance by its size, which still leaves guessing
// hopeless against argon2id.
var (
	addressLimit = limit{burst: 20, every: 15 * time.Second}
	accountLimit = limit{burst: 5, every: 2 * time.Minute}
)

type limit struct {
	burst int
	every time.Duration // one token back per every
}

func (l limit) keyed() *ratelimit.Keyed {
	return ratelimit.NewKeyed(float64(time.Second)/float64(l.every), l.burst)
}

// Sealer encrypts what keepwatch must read back (TOTP seeds, identity
// providers' client secrets) under the secret key, bound to what it
// belongs to (sealed.Keyring).
type Sealer interface {
	Seal(plaintext []byte, ad string) []byte
	Open(sealed []byte, ad string) ([]byte, error)
}

// Service authenticates requests.
type Service struct {
	cfg       Config
	log       *slog.Logger
	addresses *ratelimit.Keyed
	accounts  *ratelimit.Keyed
	cop       *http.CrossOriginProtection
	// passwordChecks bounds concurrent argon2id checks (64 MiB each), so a
	// burst of sign-ins cannot exhaust memory.
	passwordChecks chan struct{}
	dummyHash      func() string
	changes        changes
	streams        streams
	regIntegrators *ratelimit.Keyed
	regAddresses   *ratelimit.Keyed
	acct           *accounts
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 12 * time.Hour
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = func() string { return "" }
	}
	return &Service{
		cfg: cfg, log: cfg.Logger, acct: newAccounts(cfg, cfg.Logger),
		addresses: addressLimit.keyed(), accounts: accountLimit.keyed(),
		regIntegrators: registrationIntegratorLimit.keyed(), regAddresses: registrationAddressLimit.keyed(),
		cop:            http.NewCrossOriginProtection(),
		passwordChecks: make(chan struct{}, 2),
		// Checked against when the e-mail is unknown, so that a wrong
		// e-mail and a wrong password take the same time.
		dummyHash: sync.OnceValue(func() string { return secret.HashPassword(RandomToken()) }),
	}
}

// MaxAge is how long a session lasts at most.
func (s *Service) MaxAge() time.Duration { return s.cfg.MaxAge }

// Session returns the live session of the request's cookie and the hash
// that identifies it.
func (s *Service) Session(r *http.Request) (keepwatch.Session, []byte, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return keepwatch.Session{}, nil, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "please sign in")
	}
	hash := secret.Hash(c.Value)
	now := s.cfg.Now()
	ss, err := s.cfg.Store.SessionByHash(r.Context(), hash, now.Add(-s.cfg.IdleTimeout))
	if err != nil {
		return ss, nil, err
	}
	if now.Sub(ss.LastSeen) > touchEvery {
		if err := s.cfg.Store.TouchSession(r.Context(), hash, now); err != nil {
			s.log.Warn("touch session", "err", err)
		}
	}
	return ss, hash, nil
}

// CrossOrigin refuses a state-changing browser request that came from
// another site.
func (s *Service) CrossOrigin(r *http.Request) error {
	if s.cop.Check(r) != nil {
		return keepwatch.Errorf(keepwatch.EFORBIDDEN, "this request came from another site and was refused")
	}
	return nil
}

// Principal authenticates an API request: a bearer token, or else the
// dashboard's session cookie. A state-changing call made with the cookie
// must come from the dashboard's own origin and carry the session's CSRF
// token in X-CSRF-Token.
func (s *Service) Principal(r *http.Request) (keepwatch.Principal, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if ss, hash, err := s.Session(r); err == nil {
			unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
			if !unsafe || s.cop.Check(r) == nil && ValidCSRF(r.Header.Get("X-CSRF-Token"), ss.CSRF) {
				p := ss.Principal()
				p.Credential = sessionCredential(hash)
				return p, nil
			}
		}
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		return keepwatch.Principal{}, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "send an API token as 'Authorization: Bearer <token>'")
	}
	hash := secret.Hash(strings.TrimSpace(token))
	p, err := s.cfg.Store.PrincipalByTokenHash(r.Context(), hash)
	p.Credential = tokenCredential(hash)
	if err == nil {
		s.touchToken(r.Context(), hash)
	}
	return p, err
}

// ValidCSRF compares a submitted CSRF token with the session's in
// constant time.
func ValidCSRF(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// RandomToken returns 256 random bits, URL-safe.
func RandomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ClientIP is the connection's address; keepwatch terminates TLS itself,
// so forwarding headers are not trusted.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Limited is a sign-in refused by a rate limit; Wait says when to retry.
type Limited struct{ Wait time.Duration }

func (e *Limited) Error() string { return "rate limited: " + e.Message() }

// RetryAfter is how long to wait before trying again.
func (e *Limited) RetryAfter() time.Duration { return e.Wait }

// Message says how long to wait, the way people say it.
func (e *Limited) Message() string {
	secs := int(math.Ceil(e.Wait.Seconds()))
	if secs < 90 {
		return fmt.Sprintf("Too many sign-in attempts. Wait %d seconds and try again.", secs)
	}
	return fmt.Sprintf("Too many sign-in attempts. Wait %d minutes and try again.", (secs+59)/60)
}

// As lets keepwatch.ErrorCode see a Limited as ERATELIMITED.
func (e *Limited) As(target any) bool {
	if t, ok := target.(**keepwatch.Error); ok {
		*t = keepwatch.Errorf(keepwatch.ERATELIMITED, "%s", e.Message())
		return true
	}
	return false
}

// errBadLogin is the one answer to an unknown e-mail and a wrong password.
var errBadLogin = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "Wrong e-mail or password.")

// errAmbiguousLogin is a password that opens accounts with several
// integrators under one e-mail address.
var errAmbiguousLogin = keepwatch.Errorf(keepwatch.EUNAUTHORIZED,
	"This e-mail address and password open accounts with more than one integrator. Give each account its own password (ask an owner of one of them to reset yours), then sign in again.")

// checkPassword checks password against every account of an e-mail
// address (its integrators') and returns the matching one and how many
// matched. An unknown address is checked against a dummy hash, so that it
// takes as long as a known one.
func (s *Service) checkPassword(candidates []keepwatch.LoginUser, password string) (keepwatch.LoginUser, int) {
	s.passwordChecks <- struct{}{}
	defer func() { <-s.passwordChecks }()
	if len(candidates) == 0 {
		secret.CheckPassword(s.dummyHash(), password)
		return keepwatch.LoginUser{}, 0
	}
	var match keepwatch.LoginUser
	n := 0
	for _, c := range candidates {
		if secret.CheckPassword(c.PasswordHash, password) {
			match, n = c, n+1
		}
	}
	return match, n
}

// Login checks an e-mail and password and opens a session. It returns the
// cookie value (never stored) and the user. A refusal is *Limited or
// unauthorized; the two kinds of wrong (e-mail, password) look the same.
func (s *Service) Login(ctx context.Context, email, password, remote, userAgent string) (string, keepwatch.LoginUser, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || password == "" || len(email) > 254 || len(password) > 1024 {
		return "", keepwatch.LoginUser{}, keepwatch.Errorf(keepwatch.EINVALID, "Enter your e-mail address and password.")
	}
	now := s.cfg.Now()
	account := "acct:" + email
	if wait := s.accounts.Blocked(account, now); wait > 0 {
		return "", keepwatch.LoginUser{}, &Limited{wait}
	}
	if wait := s.addresses.Allow(remote, now); wait > 0 {
		s.log.Warn("sign-in rate limited", "ip", remote)
		return "", keepwatch.LoginUser{}, &Limited{wait}
	}
	// The account's token is taken before the (slow) password check and
	// given back on success, so parallel guesses cannot all pass the
	// check before any failure is counted.
	if wait := s.accounts.Allow(account, now); wait > 0 {
		return "", keepwatch.LoginUser{}, &Limited{wait}
	}
	candidates, err := s.cfg.Store.UsersForLogin(ctx, email)
	if err != nil {
		return "", keepwatch.LoginUser{}, err
	}
	u, matches := s.checkPassword(candidates, password)
	c := Client{Addr: remote, UserAgent: userAgent}
	switch {
	case matches == 0:
		s.log.Info("sign-in failed", "ip", remote)
		for _, cand := range candidates {
			s.loginFailed(cand, c)
		}
		return "", keepwatch.LoginUser{}, errBadLogin
	case matches > 1:
		// The same address and password open accounts with several
		// integrators: which one is meant cannot be told, and guessing
		// would sign a person in to the wrong tenant.
		s.log.Info("sign-in ambiguous: one e-mail and password for several integrators", "ip", remote)
		return "", keepwatch.LoginUser{}, errAmbiguousLogin
	}
	s.accounts.Reset(account)
	value, err := s.afterPassword(ctx, u, c)
	return value, u, err
}

// Logout ends the session with hash idHash.
func (s *Service) Logout(ctx context.Context, idHash []byte) error {
	defer s.CredentialsChanged()
	return s.cfg.Store.RevokeSession(ctx, idHash)
}

// SetCookie gives the browser a session cookie (value "" removes it).
func (s *Service) SetCookie(w http.ResponseWriter, r *http.Request, value string) {
	maxAge := int(s.cfg.MaxAge.Seconds())
	if value == "" {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
}

// Record appends an action to the audit log of p's integrator. A failure
// to record is logged, not returned: the action already happened.
func (s *Service) Record(r *http.Request, p keepwatch.Principal, source, action, target, detail string) {
	e := keepwatch.AuditEntry{IntegratorID: p.IntegratorID, At: s.cfg.Now(), Actor: p.Actor, Action: action, Target: target,
		Detail: detail, Source: source, RemoteAddr: ClientIP(r)}
	if err := s.cfg.Store.Audit(r.Context(), e); err != nil {
		s.log.Error("audit log", "action", action, "err", err)
	}
}
