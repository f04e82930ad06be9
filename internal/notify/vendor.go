package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"keepwatch"
	"keepwatch/internal/outbound"
)

// RetryAfter is a delivery refused for now by a rate limit (HTTP 429 or
// 503 with Retry-After): the retry is scheduled no earlier than At.
type RetryAfter struct {
	At     time.Time
	Status int
}

func (e *RetryAfter) Error() string {
	return fmt.Sprintf("rate limited (HTTP %d) until %s", e.Status, e.At.UTC().Format(time.RFC3339))
}

// Class is the generic text kept as the delivery's last error.
func (e *RetryAfter) Class() string {
	return fmt.Sprintf("HTTP %d, rate limited: retry after %s", e.Status, e.At.UTC().Format(time.RFC3339))
}

// maxRetryAfter bounds how far a vendor can push a retry.
const maxRetryAfter = 6 * time.Hour

// retryAt is when the next attempt of a failed delivery may run: the
// backoff, or later if a rate limit asked for it.
func retryAt(err error, backoff time.Time) time.Time {
	var ra *RetryAfter
	if errors.As(err, &ra) && ra.At.After(backoff) {
		return ra.At
	}
	return backoff
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date);
// without one, a rate limit waits a minute.
func parseRetryAfter(h string, now time.Time) time.Time {
	d := time.Minute
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	d = max(d, time.Second)
	return now.Add(min(d, maxRetryAfter))
}

// vendorRequest is one HTTP call to a vendor's API.
type vendorRequest struct {
	URL         string
	ContentType string
	Body        []byte
	Header      http.Header
}

// vendorCall sends a request with the guarded client and returns the
// status and at most 64 KiB of the answer. A 429 (or a 503 naming a
// time) is a *RetryAfter; other non-2xx answers an outbound status error
// (whose text never quotes the URL and its key).
func (n *Notifier) vendorCall(ctx context.Context, method string, vr vendorRequest) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, vr.URL, bytes.NewReader(vr.Body))
	if err != nil {
		return 0, nil, outbound.Errorf("invalid URL", "request: %v", err)
	}
	for k, v := range vr.Header {
		req.Header[k] = v
	}
	if vr.ContentType != "" {
		req.Header.Set("Content-Type", vr.ContentType)
	}
	req.Header.Set("User-Agent", "keepwatch/"+keepwatch.Version)
	resp, err := n.cfg.HTTP.Do(req)
	if err != nil {
		// The URL may carry the channel's key (Slack, Teams): keep it out
		// of every error text, logs included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return resp.StatusCode, body, &RetryAfter{At: parseRetryAfter(resp.Header.Get("Retry-After"), n.cfg.Now()), Status: resp.StatusCode}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return resp.StatusCode, body, outbound.StatusError(resp.StatusCode)
	}
	return resp.StatusCode, body, nil
}

// endpoint is where a vendor channel sends: its own endpoint if set,
// else the vendor's service URL.
func endpoint(ch keepwatch.Channel, vendor string) string {
	if ch.Endpoint != "" {
		return ch.Endpoint
	}
	return vendor
}

// clip shortens s to at most max bytes of whole runes, marking the cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
