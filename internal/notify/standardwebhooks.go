package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers (www.standardwebhooks.com), sent instead of
// the X-Keepwatch ones by a webhook channel whose signature is
// "standard".
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// NewStandardSecret draws a Standard Webhooks signing secret: "whsec_"
// and 32 random bytes in base64.
func NewStandardSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// standardKey is the HMAC key of a Standard Webhooks secret: the base64
// after the "whsec_" prefix, decoded.
func standardKey(secret string) []byte {
	s := strings.TrimPrefix(secret, "whsec_")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			return k
		}
	}
	return []byte(s)
}

// SignStandard returns the webhook-signature header value of a message:
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body".
func SignStandard(secret, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, standardKey(secret))
	mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyStandard checks a Standard Webhooks request the way a receiver
// should: the timestamp within tolerance of now, and one of the
// space-separated signatures equal (constant-time) to the expected one.
func VerifyStandard(secret, id, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	want := []byte(SignStandard(secret, id, ts, body))
	ok := false
	for _, sig := range strings.Fields(sigHeader) {
		if hmac.Equal([]byte(sig), want) {
			ok = true
		}
	}
	return ok
}
