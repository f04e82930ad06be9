// Package respond writes JSON answers and coded errors. It is the one place
// that maps error codes to HTTP statuses.
package respond

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// Status returns the HTTP status for an error code.
func Status(code string) int {
	switch code {
	case keepwatch.EINVALID:
		return http.StatusBadRequest
	case keepwatch.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case keepwatch.EFORBIDDEN, keepwatch.ECAREPLUSINACTIVE, keepwatch.ECONSENTREQUIRED,
		keepwatch.EKEYEXPIRED, keepwatch.EREENROLLPENDING:
		return http.StatusForbidden
	case keepwatch.ENOTFOUND:
		return http.StatusNotFound
	case keepwatch.ECONFLICT, keepwatch.EREPLAYED, keepwatch.ECONDITIONACTIVE:
		return http.StatusConflict
	case keepwatch.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case keepwatch.ERATELIMITED:
		return http.StatusTooManyRequests
	case keepwatch.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// JSON writes v with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Error writes err as {"error": {"code", "message"}}. Internal errors are
// logged with their cause and shown only as a generic message.
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := keepwatch.ErrorCode(err)
	status := Status(code)
	if status >= 500 && log != nil {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == keepwatch.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keepwatch"`)
	}
	if code == keepwatch.EUNAVAILABLE {
		w.Header().Set("Retry-After", "5")
	}
	SetRetryAfter(w, err)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, keepwatch.ErrorMessage(err)
	JSON(w, status, body)
}

// DecodeJSON reads a JSON request body of at most max bytes into v.
// Oversized bodies are too_large; anything unparsable is invalid_request.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return keepwatch.Errorf(keepwatch.EINVALID, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return keepwatch.Errorf(keepwatch.ETOOLARGE, "request body exceeds %d bytes", max)
		}
		return keepwatch.Errorf(keepwatch.EINVALID, "request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return keepwatch.Errorf(keepwatch.EINVALID, "request body has data after the JSON value")
	}
	return nil
}

// SetRetryAfter sets Retry-After when err says how long to wait (a rate
// limit's refusal).
func SetRetryAfter(w http.ResponseWriter, err error) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.RetryAfter().Seconds()))))
	}
}
