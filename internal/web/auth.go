package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
)

// SessionCookie names the dashboard's session cookie.
const SessionCookie = "kw_session"

// touchEvery bounds how often a session's last use is written: often
// enough for the idle timeout, rarely enough that page views are reads.
const touchEvery = time.Minute

// session returns the live session of the request's cookie.
func (h *Handler) session(r *http.Request) (keepwatch.Session, []byte, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return keepwatch.Session{}, nil, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "please sign in")
	}
	hash := secret.Hash(c.Value)
	now := h.now()
	ss, err := h.Store.SessionByHash(r.Context(), hash, now.Add(-h.IdleTimeout))
	if err != nil {
		return ss, nil, err
	}
	if now.Sub(ss.LastSeen) > touchEvery {
		if err := h.Store.TouchSession(r.Context(), hash, now); err != nil {
			h.Logger.Warn("touch session", "err", err)
		}
	}
	return ss, hash, nil
}

// Authenticate lets the REST API accept the dashboard's session cookie. A
// state-changing call made with the cookie must come from the dashboard's
// own origin and carry the session's CSRF token in X-CSRF-Token.
func (h *Handler) Authenticate(r *http.Request) (keepwatch.Principal, bool) {
	ss, _, err := h.session(r)
	if err != nil {
		return keepwatch.Principal{}, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		if h.cop.Check(r) != nil || !validCSRF(r.Header.Get("X-CSRF-Token"), ss.CSRF) {
			return keepwatch.Principal{}, false
		}
	}
	return ss.Principal(), true
}

func validCSRF(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// clientIP is the connection's address; keepwatch terminates TLS itself,
// so forwarding headers are not trusted.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type loginData struct {
	Email string
	Next  string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	if _, _, err := h.session(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	p := h.newPage(r, nil, "Sign in", "", loginData{Next: safeNext(r.URL.Query().Get("next"))})
	return h.render(w, http.StatusOK, "login", p)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// dummyHash is checked against when the e-mail is unknown, so that a wrong
// e-mail and a wrong password take the same time.
var dummyHash = sync.OnceValue(func() string { return secret.HashPassword(randomToken()) })

// passwordChecks bounds concurrent argon2id checks (64 MiB each), so a
// burst of logins cannot exhaust memory.
var passwordChecks = make(chan struct{}, 2)

func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) error {
		p := h.newPage(r, nil, "Sign in", "", loginData{Email: email, Next: next})
		p.Error = msg
		return h.render(w, status, "login", p)
	}
	if email == "" || password == "" || len(email) > 254 || len(password) > 1024 {
		return fail(http.StatusBadRequest, "Enter your e-mail address and password.")
	}
	ip := clientIP(r)
	if wait := h.limiter.allow("ip:"+ip, "acct:"+email); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		h.Logger.Warn("login rate limited", "ip", ip)
		return fail(http.StatusTooManyRequests, fmt.Sprintf("Too many sign-in attempts. Wait %s and try again.", humanWait(secs)))
	}
	u, err := h.Store.UserForLogin(r.Context(), email)
	if err != nil && keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
		return err
	}
	hash := u.PasswordHash
	if err != nil {
		hash = dummyHash()
	}
	passwordChecks <- struct{}{}
	ok := secret.CheckPassword(hash, password) && err == nil
	<-passwordChecks
	if !ok {
		h.limiter.failed("acct:" + email)
		h.Logger.Info("login failed", "ip", ip)
		return fail(http.StatusUnauthorized, "Wrong e-mail or password.")
	}
	h.limiter.succeeded("acct:" + email)
	value := randomToken()
	now := h.now()
	ns := keepwatch.NewSession{IDHash: secret.Hash(value), UserID: u.ID, IntegratorID: u.IntegratorID, CSRF: randomToken(),
		ExpiresAt: now.Add(h.MaxAge), RemoteAddr: ip, UserAgent: r.UserAgent()}
	if err := h.Store.CreateSession(r.Context(), ns); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: int(h.MaxAge.Seconds())})
	h.audit(r, &request{session: keepwatch.Session{IntegratorID: u.IntegratorID, Email: u.Email, Role: u.Role}}, "session.login", u.Email, "")
	if err := h.Store.DeleteEndedSessions(r.Context(), now.Add(-24*time.Hour)); err != nil {
		h.Logger.Warn("delete ended sessions", "err", err)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func humanWait(secs int) string {
	if secs < 90 {
		return fmt.Sprintf("%d seconds", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.Store.RevokeSession(r.Context(), rq.idHash); err != nil {
		return err
	}
	h.audit(r, rq, "session.logout", rq.session.Email, "")
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	http.Redirect(w, r, "/login?done=signedOut", http.StatusSeeOther)
	return nil
}

// loginLimiter is a token bucket per source address (every attempt) and
// per account (failed attempts): enough for people who mistype, too few
// for guessing. It is per node; a cluster multiplies the allowance by its
// size, which still leaves guessing hopeless against argon2id.
type loginLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

type limit struct {
	burst float64
	every time.Duration // one token back per every
}

var (
	ipLimit      = limit{burst: 20, every: 15 * time.Second}
	accountLimit = limit{burst: 5, every: 2 * time.Minute}
)

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, buckets: map[string]*bucket{}}
}

func limitOf(key string) limit {
	if strings.HasPrefix(key, "ip:") {
		return ipLimit
	}
	return accountLimit
}

// level refills and returns the bucket of key.
func (l *loginLimiter) level(key string, now time.Time) *bucket {
	lim := limitOf(key)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: lim.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(lim.burst, b.tokens+float64(now.Sub(b.at))/float64(lim.every))
	b.at = now
	return b
}

// allow takes a token from the address and checks that the account has one
// left; it returns how long to wait when either is exhausted.
func (l *loginLimiter) allow(ipKey, accountKey string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.gc(now)
	ip, acct := l.level(ipKey, now), l.level(accountKey, now)
	var wait time.Duration
	for key, b := range map[string]*bucket{ipKey: ip, accountKey: acct} {
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)*float64(limitOf(key).every)))
		}
	}
	if wait > 0 {
		return wait
	}
	ip.tokens--
	return 0
}

func (l *loginLimiter) failed(accountKey string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.level(accountKey, l.now()).tokens--
}

func (l *loginLimiter) succeeded(accountKey string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, accountKey)
}

// gc drops full buckets now and then, so the map does not grow with every
// address that ever tried.
func (l *loginLimiter) gc(now time.Time) {
	if now.Sub(l.sweep) < time.Minute {
		return
	}
	l.sweep = now
	for k, b := range l.buckets {
		lim := limitOf(k)
		if b.tokens+float64(now.Sub(b.at))/float64(lim.every) >= lim.burst {
			delete(l.buckets, k)
		}
	}
}
