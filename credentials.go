package keepwatch

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Password policy (NIST SP 800-63B): long rather than complicated, no
// composition rules, no expiry; refuse the obvious.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
)

// commonPasswords are refused whatever their length; a short list of what
// people choose when told "at least twelve characters".
var commonPasswords = []string{
	"123456789012", "1234567890123", "12345678901234", "qwertyuiopas", "qwertyuiop123",
	"password1234", "password12345", "passwordpassword", "keepwatch123", "keepwatch1234",
	"iloveyou1234", "letmein12345", "administrator", "changeme1234", "welcome12345",
	"aaaaaaaaaaaa", "correcthorsebatterystaple", "abc123abc123", "qwerty123456",
}

// ValidPassword checks a password a person chose.
func ValidPassword(password, email string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return Errorf(EINVALID, "choose a password of at least %d characters (a few words are easy to remember)", MinPasswordLen)
	}
	if len(password) > MaxPasswordLen || !utf8.ValidString(password) {
		return Errorf(EINVALID, "that password is too long")
	}
	lower := strings.ToLower(password)
	if slices.Contains(commonPasswords, strings.ReplaceAll(lower, " ", "")) {
		return Errorf(EINVALID, "that password is among the most common ones; choose another")
	}
	if strings.Count(password, string([]rune(password)[:1])) == n {
		return Errorf(EINVALID, "a password of one repeated character is easy to guess")
	}
	if email != "" {
		local, _, _ := strings.Cut(strings.ToLower(email), "@")
		if lower == strings.ToLower(email) || len(local) >= 4 && strings.Contains(lower, local) && n < len(local)+6 {
			return Errorf(EINVALID, "a password close to your e-mail address is easy to guess")
		}
	}
	return nil
}

// Sign-in methods, as recorded on a session.
const (
	MethodPassword         = "password"
	MethodPasswordTOTP     = "password+totp"
	MethodPasswordPasskey  = "password+passkey"
	MethodPasswordRecovery = "password+recovery_code"
	MethodPasskey          = "passkey"
	MethodOIDC             = "oidc"
)

// SecondFactorMethod reports whether a session signed in with method has
// proven a second factor (or a passkey with user verification, or the
// company's identity provider, which answers for its own factors).
func SecondFactorMethod(method string) bool {
	switch method {
	case MethodPasswordTOTP, MethodPasswordPasskey, MethodPasswordRecovery, MethodPasskey, MethodOIDC:
		return true
	}
	return false
}

// FactorKind is a kind of second factor.
type FactorKind string

// Second factors.
const (
	FactorTOTP    FactorKind = "totp"
	FactorPasskey FactorKind = "passkey"
)

// Factor is a user's enrolled second factor, as the user sees it.
type Factor struct {
	ID         int64      `json:"id"`
	Kind       FactorKind `json:"kind"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at,omitzero"`
}

// Passkey is a WebAuthn credential as stored: the credential itself is the
// WebAuthn library's JSON, Handle the user handle it was registered under.
type Passkey struct {
	ID           int64
	UserID       int64
	IntegratorID int64
	Name         string
	CredentialID []byte
	Handle       []byte
	Credential   []byte // JSON
	CreatedAt    time.Time
	LastUsedAt   time.Time
}

// ValidFactorName checks the name a person gives a passkey.
func ValidFactorName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Passkey"
	}
	if !ValidText(name, MaxNameLen) {
		return "", Errorf(EINVALID, "name the passkey (at most %d printable characters)", MaxNameLen)
	}
	return name, nil
}

// SessionInfo is one of a user's sessions as the sessions page shows it.
type SessionInfo struct {
	Handle     string // names the session in forms; not its cookie, not its hash
	IDHash     []byte `json:"-"`
	CreatedAt  time.Time
	LastSeen   time.Time
	ExpiresAt  time.Time
	RemoteAddr string
	UserAgent  string
	Method     string
	Current    bool
}

// AuthFlow is a sign-in in progress, between two requests: a password
// that still needs its second factor, a WebAuthn ceremony, or a round trip
// to the company's identity provider. It is found by the SHA-256 of a
// random value the browser holds, and used once.
type AuthFlow struct {
	Kind         string
	UserID       int64
	IntegratorID int64
	Data         []byte // JSON, the flow's own
	Attempts     int
	ExpiresAt    time.Time
}

// Sign-in flow kinds.
const (
	FlowSecondFactor = "second_factor" // password accepted, second factor next
	FlowEnrol        = "enrol"         // password accepted, a second factor must be enrolled first
	FlowPasskey      = "passkey"       // passwordless WebAuthn ceremony
	FlowRegister     = "passkey_register"
	FlowOIDC         = "oidc"
)

// PasswordReset is a reset link's stored half: only the hash of its token.
type PasswordReset struct {
	TokenHash    []byte
	UserID       int64
	IntegratorID int64
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RemoteAddr   string
}

// OIDCProvider is an integrator's own identity provider, through which its
// people sign in (OpenID Connect, authorization code with PKCE).
type OIDCProvider struct {
	IntegratorID int64
	Issuer       string
	ClientID     string
	// ClientSecret is in clear only on its way in and in memory; it is
	// stored sealed and never shown again.
	ClientSecret string
	// Domains are the e-mail domains allowed to sign in; empty: any.
	Domains []string
	// RoleClaim names the ID-token or userinfo claim that carries groups or
	// roles; RoleMap maps its values to keepwatch roles. A user matching no
	// value gets DefaultRole when created and keeps their role otherwise.
	RoleClaim   string
	RoleMap     map[string]Role
	DefaultRole Role
	UpdatedAt   time.Time
	UpdatedBy   string
}

// Validate checks and normalises an identity provider's settings.
func (p OIDCProvider) Validate() (OIDCProvider, error) {
	p.Issuer = strings.TrimRight(strings.TrimSpace(p.Issuer), "/")
	u, err := url.Parse(p.Issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(p.Issuer) > 512 {
		return p, Errorf(EINVALID, "the issuer must be a URL such as https://login.example.com/realms/acme")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())) {
		return p, Errorf(EINVALID, "the issuer must use https")
	}
	p.ClientID = strings.TrimSpace(p.ClientID)
	if p.ClientID == "" || !ValidText(p.ClientID, 256) {
		return p, Errorf(EINVALID, "enter the client id the identity provider gave keepwatch")
	}
	if len(p.ClientSecret) > 1024 {
		return p, Errorf(EINVALID, "the client secret is too long")
	}
	var domains []string
	for _, d := range p.Domains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" {
			continue
		}
		if _, err := NormalizeEmail("x@" + d); err != nil || !strings.Contains(d, ".") {
			return p, Errorf(EINVALID, "%q is not an e-mail domain", d)
		}
		if !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	p.Domains = domains
	p.RoleClaim = strings.TrimSpace(p.RoleClaim)
	if !ValidText(p.RoleClaim, 100) || strings.ContainsAny(p.RoleClaim, " ") {
		return p, Errorf(EINVALID, "the role claim is a claim name such as groups or roles")
	}
	if p.DefaultRole == "" {
		p.DefaultRole = RoleViewer
	}
	if _, err := ParseRole(string(p.DefaultRole)); err != nil {
		return p, err
	}
	if len(p.RoleMap) > 0 && p.RoleClaim == "" {
		return p, Errorf(EINVALID, "name the claim the role mapping applies to")
	}
	return p, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParseRoleMap reads "claim-value=role, other-value=role".
func ParseRoleMap(s string) (map[string]Role, error) {
	m := map[string]Role{}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ';' }) {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" && v == "" {
			continue
		}
		role, err := ParseRole(v)
		if !ok || k == "" || err != nil || !ValidText(k, 200) {
			return nil, Errorf(EINVALID, "write the role mapping as value=role, value=role (roles: owner, technician, viewer)")
		}
		m[k] = role
	}
	return m, nil
}

// FormatRoleMap writes a role mapping the way ParseRoleMap reads it.
func FormatRoleMap(m map[string]Role) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + string(m[k])
	}
	return strings.Join(parts, ", ")
}

// EmailAllowed reports whether an address may sign in through p.
func (p OIDCProvider) EmailAllowed(email string) bool {
	if len(p.Domains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	return at > 0 && slices.Contains(p.Domains, strings.ToLower(email[at+1:]))
}

// RoleFor returns the strongest role the claim's value maps to; ok is
// false when nothing maps. A claim may be a string or a list of strings.
func (p OIDCProvider) RoleFor(claim any) (role Role, ok bool) {
	var values []string
	switch v := claim.(type) {
	case string:
		values = []string{v}
	case []string:
		values = v
	case []any:
		for _, x := range v {
			if s, isStr := x.(string); isStr {
				values = append(values, s)
			}
		}
	}
	for _, v := range values {
		if r, found := p.RoleMap[v]; found && r.rank() > role.rank() {
			role, ok = r, true
		}
	}
	return role, ok
}
