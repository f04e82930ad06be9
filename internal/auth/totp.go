package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"keepwatch"
	"keepwatch/internal/secret"
)

// TOTP parameters: what every authenticator app understands (RFC 6238
// defaults). One step either side is accepted for clock drift; a step is
// accepted once.
const (
	totpPeriod = 30
	totpSkew   = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPSetup is an authenticator app about to be added: shown as a QR code
// and as text, and confirmed with its first code. Token carries the seed,
// sealed, between the page and the confirmation; nothing is stored before.
type TOTPSetup struct {
	Secret string // base32, for typing in
	URI    string // otpauth://
	QR     string // data: URI of a PNG
	Token  string
}

// enrolment is what a TOTPSetup token seals.
type enrolment struct {
	Secret  string `json:"s"`
	UserID  int64  `json:"u"`
	Expires int64  `json:"e"`
}

const totpSetupTTL = 15 * time.Minute

// NewTOTP prepares an authenticator app for a user.
func (s *Service) NewTOTP(u keepwatch.LoginUser) (TOTPSetup, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "keepwatch", AccountName: u.Email, Period: totpPeriod, SecretSize: 20,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader})
	if err != nil {
		return TOTPSetup{}, err
	}
	img, err := key.Image(232, 232)
	if err != nil {
		return TOTPSetup{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPSetup{}, err
	}
	b, _ := json.Marshal(enrolment{Secret: key.Secret(), UserID: u.ID, Expires: s.cfg.Now().Add(totpSetupTTL).Unix()})
	return TOTPSetup{
		Secret: key.Secret(), URI: key.URL(),
		QR:    "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
		Token: base64.RawURLEncoding.EncodeToString(s.acct.sealer.Seal(b, "totp-setup")),
	}, nil
}

// SetupFromToken shows a TOTPSetup again (after a wrong confirmation code)
// from its token.
func (s *Service) SetupFromToken(u keepwatch.LoginUser, token string) (TOTPSetup, error) {
	e, err := s.openSetup(u, token)
	if err != nil {
		return TOTPSetup{}, err
	}
	q := url.Values{"secret": {e.Secret}, "issuer": {"keepwatch"}, "period": {strconv.Itoa(totpPeriod)}, "digits": {"6"}, "algorithm": {"SHA1"}}
	key, err := otp.NewKeyFromURL((&url.URL{Scheme: "otpauth", Host: "totp", Path: "/keepwatch:" + u.Email, RawQuery: q.Encode()}).String())
	if err != nil {
		return TOTPSetup{}, err
	}
	img, err := key.Image(232, 232)
	if err != nil {
		return TOTPSetup{}, err
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return TOTPSetup{Secret: e.Secret, URI: key.URL(), QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), Token: token}, nil
}

var errSetupExpired = keepwatch.Errorf(keepwatch.EINVALID, "this set-up has expired; start again")

func (s *Service) openSetup(u keepwatch.LoginUser, token string) (enrolment, error) {
	var e enrolment
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return e, errSetupExpired
	}
	b, err := s.acct.sealer.Open(raw, "totp-setup")
	if err != nil || json.Unmarshal(b, &e) != nil || e.UserID != u.ID || s.cfg.Now().Unix() > e.Expires {
		return e, errSetupExpired
	}
	return e, nil
}

// totpStep returns the time step whose code matches, trying one step
// either side of now; 0 if none.
func totpStep(secretB32, code string, now time.Time) int64 {
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := cur + d
		want, err := totp.GenerateCodeCustom(secretB32, time.Unix(step*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step
		}
	}
	return 0
}

// ConfirmTOTP adds the authenticator app of setup token once its first
// code is right. When the user had no recovery codes, it makes them and
// returns them: they are shown this once.
func (s *Service) ConfirmTOTP(ctx context.Context, u keepwatch.LoginUser, token, code string, c Client) ([]string, error) {
	e, err := s.openSetup(u, token)
	if err != nil {
		return nil, err
	}
	if wait := s.acct.factorTries.Allow("user:"+u.Email, s.cfg.Now()); wait > 0 {
		return nil, &Limited{wait}
	}
	step := totpStep(e.Secret, strings.Join(strings.Fields(code), ""), s.cfg.Now())
	if step == 0 {
		return nil, keepwatch.Errorf(keepwatch.EINVALID, "that code is not right; check the time on your phone and try the next one")
	}
	sealed := s.acct.sealer.Seal([]byte(e.Secret), totpAAD(u))
	if _, err := s.cfg.Store.AddTOTP(ctx, u.IntegratorID, u.ID, "Authenticator app", sealed, step); err != nil {
		return nil, err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "factor.add", u.Email, "authenticator app", c)
	return s.recoveryCodesIfNone(ctx, u, c)
}

func totpAAD(u keepwatch.LoginUser) string { return "totp:" + strconv.FormatInt(u.ID, 10) }

// checkTOTP checks a code against the user's authenticator app and spends
// its time step.
func (s *Service) checkTOTP(ctx context.Context, u keepwatch.LoginUser, code string) (bool, error) {
	id, sealed, err := s.cfg.Store.TOTP(ctx, u.IntegratorID, u.ID)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	seed, err := s.acct.sealer.Open(sealed, totpAAD(u))
	if err != nil {
		return false, err
	}
	step := totpStep(string(seed), code, s.cfg.Now())
	if step == 0 {
		return false, nil
	}
	return s.cfg.Store.UseTOTPStep(ctx, u.IntegratorID, id, step, s.cfg.Now())
}

// recoveryEncoding is Crockford's base32: no i, l, o or u to misread.
var recoveryEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newRecoveryCode returns 80 random bits as xxxx-xxxx-xxxx-xxxx: too many
// to guess even against a stolen hash, so SHA-256 is enough to store it.
func newRecoveryCode() string {
	b := make([]byte, 10)
	rand.Read(b)
	s := recoveryEncoding.EncodeToString(b) // 16 characters
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// normalizeRecoveryCode accepts a code as typed (any case, with or
// without dashes and spaces).
func normalizeRecoveryCode(code string) (string, bool) {
	code = strings.NewReplacer("-", "", " ", "", "o", "0", "i", "1", "l", "1").Replace(strings.ToLower(code))
	if len(code) != 16 {
		return "", false
	}
	if _, err := recoveryEncoding.DecodeString(code); err != nil {
		return "", false
	}
	return code, true
}

// NewRecoveryCodes replaces a user's recovery codes and returns the new
// ones, to be shown once. Only a user with a second factor has them.
func (s *Service) NewRecoveryCodes(ctx context.Context, u keepwatch.LoginUser, c Client) ([]string, error) {
	factors, err := s.cfg.Store.Factors(ctx, u.IntegratorID, u.ID)
	if err != nil {
		return nil, err
	}
	if len(factors) == 0 {
		return nil, keepwatch.Errorf(keepwatch.ECONFLICT, "add a second factor first: recovery codes stand in for it")
	}
	codes := make([]string, recoveryCodes)
	hashes := make([][]byte, recoveryCodes)
	for i := range codes {
		codes[i] = newRecoveryCode()
		norm, _ := normalizeRecoveryCode(codes[i])
		hashes[i] = secret.Hash(norm)
	}
	if err := s.cfg.Store.ReplaceRecoveryCodes(ctx, u.IntegratorID, u.ID, hashes); err != nil {
		return nil, err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "recovery_codes.new", u.Email, fmt.Sprintf("%d codes; the earlier ones stopped working", recoveryCodes), c)
	return codes, nil
}

func (s *Service) recoveryCodesIfNone(ctx context.Context, u keepwatch.LoginUser, c Client) ([]string, error) {
	left, err := s.cfg.Store.RecoveryCodesLeft(ctx, u.IntegratorID, u.ID)
	if err != nil || left > 0 {
		return nil, err
	}
	return s.NewRecoveryCodes(ctx, u, c)
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (s *Service) RecoveryCodesLeft(ctx context.Context, integratorID, userID int64) (int, error) {
	return s.cfg.Store.RecoveryCodesLeft(ctx, integratorID, userID)
}

// EnrolTOTP finishes a sign-in that had to enrol a second factor: it adds
// the authenticator app and opens the session. The recovery codes are
// returned to be shown once.
func (s *Service) EnrolTOTP(ctx context.Context, value, token, code string, c Client) (string, keepwatch.LoginUser, []string, error) {
	f, err := s.pendingFlow(ctx, value)
	if err != nil {
		return "", keepwatch.LoginUser{}, nil, err
	}
	u, err := s.cfg.Store.LoginUserByID(ctx, f.IntegratorID, f.UserID)
	if err != nil {
		return "", u, nil, s.flowEnded(err)
	}
	if f.Kind != keepwatch.FlowEnrol {
		return "", u, nil, keepwatch.Errorf(keepwatch.ECONFLICT, "you have a second factor already; use it to sign in")
	}
	codes, err := s.ConfirmTOTP(ctx, u, token, code, c)
	if err != nil {
		return "", u, nil, err
	}
	session, u, err := s.finishSignIn(ctx, value, keepwatch.FlowEnrol, u, keepwatch.MethodPasswordTOTP, c)
	return session, u, codes, err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
