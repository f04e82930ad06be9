package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/outbound"
	"keepwatch/internal/ratelimit"
	"keepwatch/internal/sealed"
	"keepwatch/internal/secret"
)

// CredentialStore keeps what accounts are made of besides users and
// sessions: passwords, second factors, recovery codes, reset links,
// sign-ins in progress, identity providers. Every method that touches a
// user takes the user's integrator.
type CredentialStore interface {
	LoginUserByID(ctx context.Context, integratorID, userID int64) (keepwatch.LoginUser, error)
	SetUserPassword(ctx context.Context, integratorID, userID int64, hash string, keep []byte) (int, error)
	CreateUser(ctx context.Context, integratorID int64, email, passwordHash string, role keepwatch.Role) (int64, error)
	SetUserRole(ctx context.Context, integratorID, userID int64, role keepwatch.Role) error

	UserSessions(ctx context.Context, integratorID, userID int64, idleSince time.Time) ([]keepwatch.SessionInfo, error)
	EndUserSession(ctx context.Context, integratorID, userID int64, idHash []byte) error
	EndOtherSessions(ctx context.Context, integratorID, userID int64, keep []byte) (int, error)
	TouchToken(ctx context.Context, hash []byte, at time.Time) error

	SecondFactorRequired(ctx context.Context, integratorID int64) (bool, error)
	SetSecondFactorRequired(ctx context.Context, integratorID int64, on bool) (int, error)
	Factors(ctx context.Context, integratorID, userID int64) ([]keepwatch.Factor, error)
	AddTOTP(ctx context.Context, integratorID, userID int64, name string, sealed []byte, step int64) (int64, error)
	TOTP(ctx context.Context, integratorID, userID int64) (int64, []byte, error)
	UseTOTPStep(ctx context.Context, integratorID, factorID, step int64, at time.Time) (bool, error)
	AddPasskey(ctx context.Context, p keepwatch.Passkey) (int64, error)
	Passkeys(ctx context.Context, integratorID, userID int64) ([]keepwatch.Passkey, error)
	PasskeysByHandle(ctx context.Context, handle []byte) ([]keepwatch.Passkey, error)
	UsePasskey(ctx context.Context, integratorID, id int64, credential []byte, at time.Time) error
	RemoveFactor(ctx context.Context, integratorID, userID, factorID int64) (keepwatch.Factor, error)
	ReplaceRecoveryCodes(ctx context.Context, integratorID, userID int64, hashes [][]byte) error
	UseRecoveryCode(ctx context.Context, integratorID, userID int64, hash []byte, at time.Time) (int, error)
	RecoveryCodesLeft(ctx context.Context, integratorID, userID int64) (int, error)

	CreatePasswordReset(ctx context.Context, r keepwatch.PasswordReset) error
	PasswordResetsSince(ctx context.Context, userID int64, since time.Time) (int, error)
	PasswordReset(ctx context.Context, tokenHash []byte, now time.Time) (keepwatch.LoginUser, error)
	UsePasswordReset(ctx context.Context, tokenHash []byte, now time.Time, passwordHash string) (keepwatch.LoginUser, error)

	CreateAuthFlow(ctx context.Context, idHash []byte, f keepwatch.AuthFlow) error
	AuthFlow(ctx context.Context, idHash []byte, kind string) (keepwatch.AuthFlow, error)
	SetAuthFlowData(ctx context.Context, idHash []byte, data []byte) error
	AuthFlowFailed(ctx context.Context, idHash []byte) (int, error)
	TakeAuthFlow(ctx context.Context, idHash []byte, kind string) (keepwatch.AuthFlow, error)
	DeleteAuthFlow(ctx context.Context, idHash []byte) error

	SetOIDCProvider(ctx context.Context, p keepwatch.OIDCProvider, sealedSecret []byte) error
	OIDCProvider(ctx context.Context, integratorID int64) (keepwatch.OIDCProvider, []byte, error)
	OIDCProviderByName(ctx context.Context, name string) (keepwatch.OIDCProvider, []byte, error)
	DeleteOIDCProvider(ctx context.Context, integratorID int64) error
	OIDCUser(ctx context.Context, integratorID int64, issuer, subject string) (keepwatch.LoginUser, error)
	LinkOIDCUser(ctx context.Context, integratorID int64, issuer, subject string, userID int64) error
	IntegratorName(ctx context.Context, integratorID int64) (string, error)
}

// SignInCookie holds a sign-in in progress (a second factor to prove, a
// round trip to the company's identity provider). It is short-lived and
// only the login pages see it.
const SignInCookie = "kw_signin"

// Limits of the account pages, per node like the sign-in limits.
var (
	// A reset link may be asked for an address, from an address, a few
	// times; the per-account limit (resetsPerHour) is in the database.
	resetAddressLimit = limit{burst: 10, every: 3 * time.Minute}
	resetEmailLimit   = limit{burst: 3, every: 10 * time.Minute}
	// Second-factor codes: six digits are guessed in 10^6 tries; five,
	// then one every 30 seconds, keeps that out of reach.
	factorLimit = limit{burst: 5, every: 30 * time.Second}
)

const (
	resetTTL        = 30 * time.Minute
	resetsPerHour   = 3
	signInFlowTTL   = 10 * time.Minute
	ceremonyTTL     = 5 * time.Minute
	flowMaxAttempts = 5
	recoveryCodes   = 10
)

// accounts is the Service's state for everything beyond password sign-in.
type accounts struct {
	resetAddresses *ratelimit.Keyed
	resetEmails    *ratelimit.Keyed
	factorTries    *ratelimit.Keyed
	sealer         Sealer
	http           *http.Client

	// tokenUse remembers when this node last wrote each API token's
	// last use, so a busy token costs one write a minute.
	tokenMu  sync.Mutex
	tokenUse map[string]time.Time

	oidcMu    sync.Mutex
	providers map[int64]*cachedProvider
	// relyingParties caches keepwatch as WebAuthn sees it, by origin.
	relyingParties sync.Map

	// jobs run after the answer was sent, so that an answer takes the same
	// time whether an account exists or not (a reset link to mail, a
	// failed sign-in to audit).
	jobs chan func(context.Context)
}

func newAccounts(cfg Config, log *slog.Logger) *accounts {
	a := &accounts{
		resetAddresses: resetAddressLimit.keyed(), resetEmails: resetEmailLimit.keyed(), factorTries: factorLimit.keyed(),
		sealer: cfg.Sealer, http: cfg.HTTP, tokenUse: map[string]time.Time{}, providers: map[int64]*cachedProvider{},
		jobs: make(chan func(context.Context), 256),
	}
	if a.sealer == nil {
		// Without a configured key, what is sealed lasts as long as the
		// process: fine for tests, never for a server (app always sets one).
		key := make([]byte, 32)
		copy(key, secret.Hash(RandomToken()))
		a.sealer, _ = sealed.NewKeyring(key)
		log.Debug("auth: sealing with a key that lives only in memory")
	}
	if a.http == nil {
		a.http, _ = outbound.New(outbound.Config{}) // public addresses only
	}
	return a
}

// Run does the work queued after answers (reset mails, audits of failed
// sign-ins) until ctx ends, then finishes what was promised.
func (s *Service) Run(ctx context.Context) {
	a := s.acct
	for {
		select {
		case job := <-a.jobs:
			s.runJob(ctx, job)
		case <-ctx.Done():
			for {
				select {
				case job := <-a.jobs:
					s.runJob(ctx, job)
				default:
					return
				}
			}
		}
	}
}

// runJob runs one job with a deadline of its own; a job promised before
// shutdown still finishes (its context outlives ctx's cancellation).
func (s *Service) runJob(ctx context.Context, job func(context.Context)) {
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancel()
	job(jctx)
}

// later queues work to run after the answer; when the queue is full the
// work is dropped and logged (a reset can be asked for again).
func (s *Service) later(what string, job func(context.Context)) {
	select {
	case s.acct.jobs <- job:
	default:
		s.log.Warn("auth: background queue full, dropped", "what", what)
	}
}

// Client is who makes a request: the connection's address and browser.
type Client struct {
	Addr      string
	UserAgent string
}

// ClientOf returns the client of a request.
func ClientOf(r *http.Request) Client { return Client{Addr: ClientIP(r), UserAgent: r.UserAgent()} }

// audit appends a security event to an integrator's audit log. Failures
// are logged: the event already happened.
func (s *Service) audit(ctx context.Context, integratorID int64, actor, action, target, detail string, c Client) {
	e := keepwatch.AuditEntry{IntegratorID: integratorID, At: s.cfg.Now(), Actor: actor, Action: action, Target: target,
		Detail: detail, Source: "web", RemoteAddr: c.Addr}
	if err := s.cfg.Store.Audit(ctx, e); err != nil {
		s.log.Error("audit log", "action", action, "err", err)
	}
}

// openSession starts a dashboard session for a user who proved who they
// are with method, and returns the cookie value (never stored).
func (s *Service) openSession(ctx context.Context, u keepwatch.LoginUser, method string, c Client) (string, error) {
	now := s.cfg.Now()
	value := RandomToken()
	ns := keepwatch.NewSession{IDHash: secret.Hash(value), UserID: u.ID, IntegratorID: u.IntegratorID, CSRF: RandomToken(),
		ExpiresAt: now.Add(s.cfg.MaxAge), RemoteAddr: c.Addr, UserAgent: c.UserAgent, Method: method}
	if err := s.cfg.Store.CreateSession(ctx, ns); err != nil {
		return "", err
	}
	if err := s.cfg.Store.DeleteEndedSessions(ctx, now.Add(-24*time.Hour)); err != nil {
		s.log.Warn("delete ended sessions", "err", err)
	}
	return value, nil
}

// SetSignInCookie gives the browser the handle of a sign-in in progress
// (value "" removes it).
func (s *Service) SetSignInCookie(w http.ResponseWriter, r *http.Request, value string) {
	maxAge := int(signInFlowTTL.Seconds())
	if value == "" {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{Name: SignInCookie, Value: value, Path: "/login", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
}

// SignInValue returns the request's sign-in-in-progress handle, or "".
func SignInValue(r *http.Request) string {
	c, err := r.Cookie(SignInCookie)
	if err != nil || len(c.Value) > 100 {
		return ""
	}
	return c.Value
}

// touchToken writes an API token's last use at most once a minute.
func (s *Service) touchToken(ctx context.Context, hash []byte) {
	a, now := s.acct, s.cfg.Now()
	key := string(hash)
	a.tokenMu.Lock()
	if last, ok := a.tokenUse[key]; ok && now.Sub(last) < touchEvery {
		a.tokenMu.Unlock()
		return
	}
	if len(a.tokenUse) > 10000 {
		for k, t := range a.tokenUse {
			if now.Sub(t) >= touchEvery {
				delete(a.tokenUse, k)
			}
		}
	}
	a.tokenUse[key] = now
	a.tokenMu.Unlock()
	if err := s.cfg.Store.TouchToken(ctx, hash, now); err != nil {
		s.log.Warn("touch token", "err", err)
	}
}

// SessionHandle names a session in forms without revealing its cookie or
// the hash the database knows it by.
func SessionHandle(idHash []byte) string {
	h := sha256.Sum256(append([]byte("keepwatch session handle\x00"), idHash...))
	return hex.EncodeToString(h[:12])
}

func actor(email string) string { return "user:" + email }
