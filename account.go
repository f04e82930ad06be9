package keepwatch

import (
	"net/mail"
	"strings"
	"time"
)

// User is a person who signs in to an integrator's dashboard.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	LastLogin time.Time `json:"last_login,omitzero"` // zero if never signed in
}

// NormalizeEmail validates an e-mail address and returns it lower-cased.
func NormalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return "", Errorf(EINVALID, "%q is not an e-mail address", s)
	}
	return s, nil
}

// Token is an API token as its integrator's owners see it: never its value.
type Token struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"` // zero while the token works
	// LastUsedAt is when the token last authenticated a request, to the
	// minute; zero if never.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// ValidTokenName checks the name a person gives a new token.
func ValidTokenName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !ValidText(name, MaxNameLen) {
		return "", Errorf(EINVALID, "name the token (1 to %d printable characters)", MaxNameLen)
	}
	return name, nil
}

// Session is a signed-in dashboard user, as seen on every request. Role and
// e-mail come from the user, so a role change or a removed user takes
// effect on the next request.
type Session struct {
	UserID       int64
	IntegratorID int64
	Email        string
	Role         Role
	CSRF         string
	CreatedAt    time.Time
	LastSeen     time.Time
	ExpiresAt    time.Time
}

// Principal is who the session acts as.
func (s Session) Principal() Principal {
	return Principal{IntegratorID: s.IntegratorID, Role: s.Role, Actor: "user:" + s.Email}
}

// NewSession is a session about to be stored. IDHash is the SHA-256 of the
// cookie value; the value itself is never stored.
type NewSession struct {
	IDHash       []byte
	UserID       int64
	IntegratorID int64
	CSRF         string
	ExpiresAt    time.Time
	RemoteAddr   string
	UserAgent    string
	Method       string // how the user signed in: MethodPassword, MethodPasskey, …
}

// LoginUser is what a sign-in checks: the user, its integrator and role,
// and its password hash.
type LoginUser struct {
	ID           int64
	IntegratorID int64
	Email        string
	Role         Role
	PasswordHash string
}

// AuditEntry is one state-changing action by a person or an API token.
type AuditEntry struct {
	ID           int64     `json:"id"`
	IntegratorID int64     `json:"-"`
	At           time.Time `json:"at"`
	Actor        string    `json:"actor"`  // "user:…" or "token:…"
	Action       string    `json:"action"` // e.g. "incident.ack", "registration.add"
	Target       string    `json:"target"` // what it acted on: an SLC, "incident 42", an e-mail
	Detail       string    `json:"detail,omitempty"`
	Source       string    `json:"source"` // "web" or "api"
	RemoteAddr   string    `json:"remote_addr,omitempty"`
}
