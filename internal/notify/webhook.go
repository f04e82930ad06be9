package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"keepwatch"
	"keepwatch/internal/outbound"
)

// Webhook headers. The signature is "v1=" + hex(HMAC-SHA256(secret,
// timestamp + "." + body)); receivers recompute it and compare in
// constant time, and reject timestamps far from their clock.
const (
	HeaderDelivery  = "X-Keepwatch-Delivery"
	HeaderTimestamp = "X-Keepwatch-Timestamp"
	HeaderSignature = "X-Keepwatch-Signature"
)

// Sign returns the signature header value for a body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook request's signature the way a receiver should:
// constant-time compare, and a timestamp within tolerance of now.
func Verify(secret, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sigHeader))
}

func (n *Notifier) sendWebhook(ctx context.Context, ch keepwatch.Channel, m Message) error {
	body := map[string]any{"id": strconv.FormatInt(m.ID, 10), "type": m.Type, "subject": m.Subject, "text": m.Text, "sent_at": n.cfg.Now().UTC()}
	if m.URL != "" {
		body["url"] = m.URL
	}
	for k, v := range m.Body {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.Target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	ts := n.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keepwatch/"+keepwatch.Version)
	if ch.Signature == keepwatch.SignatureStandard {
		id := strconv.FormatInt(m.ID, 10)
		req.Header.Set(HeaderWebhookID, id)
		req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderWebhookSignature, SignStandard(ch.Secret, id, ts, b))
	} else {
		req.Header.Set(HeaderDelivery, strconv.FormatInt(m.ID, 10))
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(ch.Secret, ts, b))
	}
	resp, err := n.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return outbound.StatusError(resp.StatusCode)
	}
	return nil
}
