// Package web serves the integrators' dashboard: server-rendered pages
// (html/template, embedded with their stylesheet and a small script) for
// the overview, installations, incidents, the registration center and
// settings. It reads and writes through the same tenant-scoped store
// methods as the REST API, with the integrator id of the signed-in user;
// roles are enforced here, per route, never only by hiding buttons.
//
// Live updates come from the API's event stream (/api/v1/events), which
// accepts the dashboard's session cookie through Authenticate: on each
// change the page refetches its live region as HTML.
package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/respond"
)

//go:embed templates static
var assets embed.FS

// Handler serves the dashboard.
type Handler struct {
	Store  Store
	Auth   *auth.Service
	Now    func() time.Time
	Logger *slog.Logger
	// Publish receives the changes the dashboard's actions make (drive
	// verdicts after new settings), once committed.
	Publish func([]keepwatch.Change)
	// KeyLifetime is how long a new enrollment key enrolls (default
	// keepwatch.EnrollmentKeyLifetime); ingest enforces it.
	KeyLifetime time.Duration

	pages    map[string]*template.Template
	static   http.Handler
	staticFS fs.FS
}

// Route is one dashboard route with the least role it needs ("" for
// public pages).
type Route struct {
	Method, Pattern string
	Role            keepwatch.Role
	handle          func(http.ResponseWriter, *http.Request, *request) error
}

// request is what a handler knows about the signed-in user.
type request struct {
	session keepwatch.Session
	idHash  []byte
}

func (rq *request) principal() keepwatch.Principal { return rq.session.Principal() }

// Routes lists every dashboard route; the access tests are checked against
// it.
func (h *Handler) Routes() []Route {
	return append([]Route{
		{"GET", "/login", "", h.loginPage},
		{"POST", "/login", "", h.login},
		{"POST", "/logout", keepwatch.RoleViewer, h.logout},
		{"GET", "/{$}", keepwatch.RoleViewer, h.overview},
		{"GET", "/installations/{slc}", keepwatch.RoleViewer, h.installation},
		{"POST", "/installations/{slc}/maintenance", keepwatch.RoleTechnician, h.setMaintenance},
		{"POST", "/installations/{slc}/maintenance/{id}/stop", keepwatch.RoleTechnician, h.stopMaintenance},
		{"POST", "/installations/{slc}/drives", keepwatch.RoleTechnician, h.setDriveSettings},
		{"GET", "/incidents", keepwatch.RoleViewer, h.incidents},
		{"POST", "/incidents/bulk", keepwatch.RoleTechnician, h.bulkIncidents},
		{"GET", "/incidents/{id}", keepwatch.RoleViewer, h.incident},
		{"POST", "/incidents/{id}/ack", keepwatch.RoleTechnician, h.ackIncident},
		{"POST", "/incidents/{id}/assign", keepwatch.RoleTechnician, h.assignIncident},
		{"POST", "/incidents/{id}/resolve", keepwatch.RoleTechnician, h.resolveIncident},
		{"GET", "/registrations", keepwatch.RoleViewer, h.registrations},
		{"POST", "/registrations", keepwatch.RoleOwner, h.register},
		{"POST", "/registrations/release", keepwatch.RoleOwner, h.release},
		{"POST", "/registrations/enrollment-key", keepwatch.RoleOwner, h.rotateEnrollmentKey},
		{"POST", "/registrations/enrollment-key/revoke", keepwatch.RoleOwner, h.revokeEnrollmentKey},
		{"POST", "/registrations/reenrollments/{id}/approve", keepwatch.RoleTechnician, h.approveReenrollment},
		{"POST", "/registrations/reenrollments/{id}/reject", keepwatch.RoleTechnician, h.rejectReenrollment},
		{"GET", "/settings", keepwatch.RoleOwner, h.settings},
		{"POST", "/settings/users", keepwatch.RoleOwner, h.addUser},
		{"POST", "/settings/users/{id}/role", keepwatch.RoleOwner, h.setUserRole},
		{"POST", "/settings/users/{id}/remove", keepwatch.RoleOwner, h.removeUser},
		{"POST", "/settings/tokens", keepwatch.RoleOwner, h.createToken},
		{"POST", "/settings/tokens/{id}/revoke", keepwatch.RoleOwner, h.revokeToken},
		{"GET", "/notifications", keepwatch.RoleViewer, h.notifications},
		{"POST", "/notifications/channels", keepwatch.RoleOwner, h.createChannel},
		{"POST", "/notifications/channels/{id}/test", keepwatch.RoleOwner, h.testChannel},
		{"POST", "/notifications/rules", keepwatch.RoleOwner, h.createRule},
		{"POST", "/notifications/rules/{id}/delete", keepwatch.RoleOwner, h.deleteRule},
		{"POST", "/notifications/channels/{id}/delete", keepwatch.RoleOwner, h.deleteChannel},
		{"GET", "/static/{file...}", "", h.serveStatic},
	}, h.accountRoutes()...)
}

// Register adds the dashboard's routes to mux. Paths nobody else serves
// get the dashboard's "not found" page.
func (h *Handler) Register(mux *http.ServeMux) error {
	if err := h.init(); err != nil {
		return err
	}
	for _, rt := range h.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, h.wrap(rt))
	}
	mux.Handle("/", h.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		// The same page as any other "not found": a signed-in user keeps
		// the navigation and is offered the overview, not "Sign in".
		var rq *request
		if ss, hash, err := h.Auth.Session(r); err == nil {
			rq = &request{session: ss, idHash: hash}
		}
		h.renderError(w, r, rq, keepwatch.Errorf(keepwatch.ENOTFOUND, "there is no page at this address"))
	})))
	return nil
}

func (h *Handler) init() error {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return err
	}
	h.static, h.staticFS = http.FileServerFS(sub), sub
	if err := h.parseTemplates(); err != nil {
		return err
	}
	return h.parseAccountTemplates()
}

// csp allows only the dashboard's own script, stylesheet and images: no
// inline script or style, no framing, forms post only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'"

// headers sets the security headers of every dashboard response.
func (h *Handler) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) wrap(rt Route) http.Handler {
	return h.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.Pattern != "/static/{file...}" {
			w.Header().Set("Cache-Control", "no-store")
		}
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		// Cross-origin browser requests never change anything, whether or
		// not they carry a session.
		if unsafe {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := h.Auth.CrossOrigin(r); err != nil {
				h.renderError(w, r, nil, err)
				return
			}
		}
		rq := &request{}
		if rt.Role != "" {
			ss, hash, err := h.Auth.Session(r)
			if err != nil {
				h.unauthenticated(w, r, err)
				return
			}
			rq.session, rq.idHash = ss, hash
			if unsafe && !auth.ValidCSRF(r.PostFormValue("csrf"), ss.CSRF) {
				h.renderError(w, r, rq, keepwatch.Errorf(keepwatch.EFORBIDDEN, "this form has expired; reload the page and try again"))
				return
			}
			if !ss.Role.Allows(rt.Role) {
				h.renderError(w, r, rq, keepwatch.Errorf(keepwatch.EFORBIDDEN, "this needs the %s role; ask an owner of your account", rt.Role))
				return
			}
		}
		if err := rt.handle(w, r, rq); err != nil {
			if rt.Role == "" && rq.session.UserID == 0 && r.Method == http.MethodGet {
				// A public page's error looks the same to a signed-in user
				// as any other page's.
				if ss, hash, serr := h.Auth.Session(r); serr == nil {
					rq = &request{session: ss, idHash: hash}
				}
			}
			h.renderError(w, r, rq, err)
		}
	}))
}

// unauthenticated sends a browser to the login page, and answers
// everything else (a form post, a live-region refresh) with 401.
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	if r.Method == http.MethodGet && r.URL.Query().Get("partial") == "" {
		next := r.URL.RequestURI()
		target := "/login"
		if next != "/" {
			target += "?next=" + url.QueryEscape(next)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	h.renderError(w, r, nil, err)
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request, _ *request) error {
	// Files only: a directory (/static/ itself) is not listed.
	name := r.PathValue("file")
	if fi, err := fs.Stat(h.staticFS, name); name == "" || err != nil || fi.IsDir() {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "there is no page at this address")
	}
	// Assets are embedded in the binary: they change only with it.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	r.URL.Path = "/" + name
	h.static.ServeHTTP(w, r)
	return nil
}

func (h *Handler) now() time.Time { return h.Now().UTC() }

func (h *Handler) today() keepwatch.Date { return keepwatch.DateOf(h.Now()) }

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // which navigation entry is current
	User    *keepwatch.Session
	CSRF    string
	Now     time.Time
	Flash   string
	Error   string
	Partial bool
	// Form holds what a refused form's fields said, and why each was
	// refused, so the form shows them again beside their fields.
	Form formState
	Data any
}

func (h *Handler) newPage(r *http.Request, rq *request, title, nav string, data any) *page {
	p := &page{Title: title, Nav: nav, Now: h.now(), Data: data, Flash: flashes[r.URL.Query().Get("done")]}
	if rq != nil && rq.session.UserID != 0 {
		p.User, p.CSRF = &rq.session, rq.session.CSRF
	}
	return p
}

// render executes a page template; a template failure is an internal
// error, never a half-written page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) error {
	t, ok := h.pages[name]
	if !ok {
		return errors.New("no template " + name)
	}
	var buf bytes.Buffer
	entry := "layout"
	if p.Partial {
		entry = "live"
	}
	if err := t.ExecuteTemplate(&buf, entry, p); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// renderError shows err as a page with the fitting status. Internal
// errors are logged and shown only as a generic message.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	code := keepwatch.ErrorCode(err)
	status := statusOf(code)
	if status >= 500 {
		h.Logger.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == keepwatch.EUNAVAILABLE {
		w.Header().Set("Retry-After", "5")
	}
	respond.SetRetryAfter(w, err)
	title := map[int]string{400: "Check your input", 401: "Please sign in", 403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many attempts"}[status]
	if title == "" {
		title = "Something went wrong"
	}
	p := h.newPage(r, rq, title, "", map[string]any{"Status": status, "Message": keepwatch.ErrorMessage(err)})
	p.Flash = ""
	if r.URL.Query().Get("partial") != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(keepwatch.ErrorMessage(err)))
		return
	}
	if rerr := h.render(w, status, "error", p); rerr != nil {
		h.Logger.Error("render error page", "err", rerr)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// statusOf maps error codes to HTTP statuses, the same way as the API.
func statusOf(code string) int { return respond.Status(code) }

// flashes are the confirmations a redirect after a form can show. Only
// these fixed texts are shown, so a crafted link cannot put words on the
// page.
var flashes = map[string]string{
	"acked":                "Incident acknowledged.",
	"assigned":             "Assignment saved.",
	"resolved":             "Incident resolved.",
	"maintenance":          "Maintenance started: nobody is notified until it ends.",
	"maintenanceEnd":       "Maintenance ended.",
	"registered":           "SLC registered. Its installation appears once its servers report.",
	"mine":                 "This SLC is already registered to your account: nothing changed.",
	"userAdded":            "User added.",
	"tokenCreated":         "API token created.",
	"channelCreated":       "Channel added.",
	"codesCreated":         "New recovery codes made; the old ones no longer work.",
	"bulk":                 "",
	"drives":               "Drive settings saved: the drives are judged against them now.",
	"maintenanceScheduled": "Maintenance scheduled: it shows on the overview until it starts.",
	"maintenanceCancelled": "Scheduled maintenance cancelled.",
	"released":             "SLC released.",
	"enrollmentKeyIssued":  "New enrollment key issued.",
	"enrollmentKeyRevoked": "Enrollment key revoked: nothing enrolls into that installation until you issue a new one; enrolled servers keep reporting.",
	"reenrollmentApproved": "Re-enrollment approved: the server reports with its new key, the old one is refused.",
	"reenrollmentRejected": "Re-enrollment rejected: the server keeps its key.",
	"role":                 "Role changed.",
	"removed":              "User removed.",
	"revoked":              "Token revoked.",
	"signedOut":            "You are signed out.",
	"channelDeleted":       "Channel deleted.",
	"testQueued":           "Test notification queued; its outcome appears below.",
	"ruleCreated":          "Rule added.",
	"ruleDeleted":          "Rule deleted.",
}

// redirectDone sends the browser back to path (a local path) after a
// successful form, with a confirmation: every form that changes something
// answers with a redirect, so a reload never posts it again.
func redirectDone(w http.ResponseWriter, r *http.Request, path, done string) {
	redirectTo(w, r, path, done, "")
}

// redirectTo is redirectDone that lands on an element of the page (an
// incident's row), so the person stays where they were.
func redirectTo(w http.ResponseWriter, r *http.Request, path, done, anchor string) {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.Contains(path, "\\") {
		path = "/"
	}
	path, _, _ = strings.Cut(path, "#")
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: "/"}
	}
	q := u.Query()
	q.Del("done")
	if done != "" {
		q.Set("done", done)
	}
	u.RawQuery = q.Encode()
	target := u.RequestURI()
	if anchor != "" {
		target += "#" + url.PathEscape(anchor)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// audit records a state-changing action of the signed-in user.
func (h *Handler) audit(r *http.Request, rq *request, action, target, detail string) {
	h.Auth.Record(r, rq.principal(), "web", action, target, detail)
}

// Store is what the dashboard reads and writes.
type Store interface {
	keepwatch.InstallationStore
	keepwatch.RegistrationStore
	keepwatch.IncidentStore
	keepwatch.MaintenanceStore
	keepwatch.ChannelStore
	keepwatch.AccountStore
	keepwatch.DriveStore
	keepwatch.TrustStore
	flashStore
}
