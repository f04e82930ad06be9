package web

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"keepwatch"
)

// Forms: a form that changes something answers with a redirect
// (post/redirect/get), so reloading the page never posts it twice. A
// refused form is shown again at once, with what was typed, and each
// refusal beside its field. What a form makes once and shows once (a new
// API token, a webhook's signing secret, recovery codes) goes through a
// short-lived flash kept on the server for the session that posted it,
// never in the URL.

// flashStore keeps one-time values per session (store.PutFlash).
type flashStore interface {
	PutFlash(ctx context.Context, sessionHash []byte, name, value string, expires time.Time) error
	TakeFlash(ctx context.Context, sessionHash []byte, name string) (string, error)
}

// flashTTL is how long a one-time value waits for the page after the
// redirect.
const flashTTL = 5 * time.Minute

// putFlash keeps value for this session's next page to show once.
func (h *Handler) putFlash(ctx context.Context, rq *request, name, value string) error {
	return h.Store.PutFlash(ctx, rq.idHash, name, value, h.Now().Add(flashTTL))
}

// takeFlash returns this session's flash of that name, once.
func (h *Handler) takeFlash(ctx context.Context, rq *request, name string) (string, error) {
	return h.Store.TakeFlash(ctx, rq.idHash, name)
}

// formState is what a refused form said, and why. Fields are named
// "form.field" ("token.name"): a page with several forms shows the values
// and errors of the one that was posted only.
type formState struct {
	of     string
	values url.Values
	errs   map[string]string
}

// refusedForm records the values of r's form and err, shown beside field
// (or the field keepwatch.FieldOf(err) names).
func refusedForm(r *http.Request, form, field string, err error) formState {
	if f := keepwatch.FieldOf(err); f != "" {
		field = f
	}
	return formState{of: form, values: r.PostForm, errs: map[string]string{form + "." + field: keepwatch.ErrorMessage(err)}}
}

func (f formState) split(key string) (string, bool) {
	form, field, _ := strings.Cut(key, ".")
	return field, form == f.of && f.values != nil
}

// Value is what the field said ("" on a fresh form).
func (f formState) Value(key string) string {
	if field, ok := f.split(key); ok {
		return f.values.Get(field)
	}
	return ""
}

// Or is Value, or def when the form was not posted.
func (f formState) Or(key, def string) string {
	if field, ok := f.split(key); ok {
		return f.values.Get(field)
	}
	return def
}

// Has reports whether the posted form had this value for the field (a
// checkbox or option to show selected again).
func (f formState) Has(key, value string) bool {
	field, ok := f.split(key)
	return ok && slices.Contains(f.values[field], value)
}

// Err is why the field was refused, or "".
func (f formState) Err(key string) string { return f.errs[key] }

// Invalid marks a refused field for assistive technology, points it to
// its message and focuses it, so that the browser scrolls it into view.
func (f formState) Invalid(key string) template.HTMLAttr {
	if f.errs[key] == "" {
		return ""
	}
	return template.HTMLAttr(`aria-invalid="true" aria-describedby="` + template.HTMLEscapeString(errID(key)) + `" autofocus`)
}

// errID is the id of a field's error message.
func errID(key string) string { return strings.ReplaceAll(key, ".", "-") + "-error" }

// fieldError is what the "ferr" template shows.
type fieldError struct{ ID, Msg string }

func (f formState) Field(key string) fieldError { return fieldError{errID(key), f.errs[key]} }

// statusOfRefusal is the HTTP status of a refused form.
func statusOfRefusal(err error) int { return statusOf(keepwatch.ErrorCode(err)) }
