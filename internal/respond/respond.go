// Package respond writes JSON answers and coded errors. It is the one place
// that maps error codes to HTTP statuses.
package respond

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"reflect"
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
// The media type is matched without regard to case (RFC 9110 §8.3.1);
// parameters such as charset=utf-8 are allowed.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !IsMediaType(ct, "application/json") {
		return keepwatch.Errorf(keepwatch.EINVALID, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return keepwatch.Errorf(keepwatch.ETOOLARGE, "request body exceeds %d bytes", max)
		}
		return keepwatch.Errorf(keepwatch.EINVALID, "request body: %s", JSONProblem(err))
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

// IsMediaType reports whether a Content-Type header names the media type
// want (lower case), in any case and with any parameters.
func IsMediaType(header, want string) bool {
	mt, _, err := mime.ParseMediaType(header)
	return err == nil && mt == want
}

// JSONProblem says for people what is wrong with a JSON document that
// encoding/json refused: a timestamp that is not RFC 3339, a field of the
// wrong type, or a syntax error and where.
func JSONProblem(err error) string {
	var perr *time.ParseError
	var terr *json.UnmarshalTypeError
	var serr *json.SyntaxError
	var berr base64.CorruptInputError
	switch {
	case errors.As(err, &berr):
		return "a key is not standard base64 with padding (RFC 4648 §4)"
	case errors.As(err, &perr):
		return fmt.Sprintf("%q is not an RFC 3339 timestamp (such as 2026-03-02T08:15:00Z)", perr.Value)
	case strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		return "a timestamp must be a string in RFC 3339 format (such as 2026-03-02T08:15:00Z)"
	case errors.As(err, &terr) && terr.Field != "":
		return fmt.Sprintf("%s must be %s, not %s", terr.Field, jsonKind(terr.Type.Kind()), terr.Value)
	case errors.As(err, &terr):
		return fmt.Sprintf("must be %s, not %s", jsonKind(terr.Type.Kind()), terr.Value)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &serr) && strings.Contains(serr.Error(), "unexpected end"):
		return "not valid JSON (it ends too early)"
	case errors.As(err, &serr):
		return fmt.Sprintf("not valid JSON (at byte %d)", serr.Offset)
	}
	return "not valid JSON"
}

// jsonKind names, for people, what JSON value a Go kind takes.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}
