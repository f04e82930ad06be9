// Package api serves the integrators' REST API under /api/v1/. Every
// handler reads and writes through tenant-scoped store methods with the
// integrator id of the authenticated principal.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/live"
	"keepwatch/internal/respond"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte { return openAPI }

// maxBody bounds JSON request bodies.
const maxBody = 64 << 10

// Store is what the API reads and writes.
type Store interface {
	keepwatch.InstallationStore
	keepwatch.RegistrationStore
	keepwatch.IncidentStore
	keepwatch.MaintenanceStore
	keepwatch.ChannelStore
	keepwatch.AccountStore
	keepwatch.DriveStore
	keepwatch.TrustStore
}

// Handler serves the API.
type Handler struct {
	Store  Store
	Auth   *auth.Service
	Broker *live.Broker
	Now    func() time.Time
	Logger *slog.Logger
	// KeepAlive paces SSE comments that keep proxies from closing idle
	// streams (default 15 s).
	KeepAlive time.Duration
	// Publish receives the changes the API's actions make (drive
	// verdicts after new settings), once committed.
	Publish func([]keepwatch.Change)
	// Closing, when closed, ends open event streams (server shutdown).
	Closing <-chan struct{}
	// KeyLifetime is how long a new enrollment key enrolls (default
	// keepwatch.EnrollmentKeyLifetime); ingest enforces it.
	KeyLifetime time.Duration
	// RecheckEvery paces the re-check of an event stream's credential
	// (default 800 ms, so that a stream ends within a second).
	RecheckEvery time.Duration
}

// auditKey carries, in a request's context, the audit entry of a
// state-changing call: what it acted on when its path does not say (a body
// field, an e-mail), and the detail the dashboard records for the same
// action.
type auditKey struct{}

type auditNote struct{ target, detail string }

// setAuditTarget names what a state-changing call acted on.
func setAuditTarget(r *http.Request, target string) { setAudit(r, target, "") }

// setAudit names what a state-changing call acted on, with a detail.
func setAudit(r *http.Request, target, detail string) {
	if a, ok := r.Context().Value(auditKey{}).(*auditNote); ok {
		a.target, a.detail = target, detail
	}
}

// Route is one API route with the least role it needs ("" for public).
// A state-changing route names its Action in the audit log, the same name
// the dashboard gives the same action.
type Route struct {
	Method, Pattern string
	Role            keepwatch.Role
	handle          func(http.ResponseWriter, *http.Request, keepwatch.Principal) error
	Action          string
}

// Routes lists every route; the OpenAPI document and the access tests are
// checked against it.
func (h *Handler) Routes() []Route {
	return append([]Route{
		{"GET", "/api/v1/installations", keepwatch.RoleViewer, h.listInstallations, ""},
		{"GET", "/api/v1/installations/{slc}", keepwatch.RoleViewer, h.getInstallation, ""},
		{"GET", "/api/v1/installations/{slc}/servers", keepwatch.RoleViewer, h.listServers, ""},
		{"GET", "/api/v1/incidents", keepwatch.RoleViewer, h.listIncidents, ""},
		{"GET", "/api/v1/incidents/{id}", keepwatch.RoleViewer, h.getIncident, ""},
		{"POST", "/api/v1/incidents/{id}/ack", keepwatch.RoleTechnician, h.ackIncident, "incident.ack"},
		{"POST", "/api/v1/incidents/{id}/resolve", keepwatch.RoleTechnician, h.resolveIncident, "incident.resolve"},
		{"POST", "/api/v1/registrations", keepwatch.RoleOwner, h.register, "registration.add"},
		{"DELETE", "/api/v1/registrations/{slc}", keepwatch.RoleOwner, h.release, "registration.release"},
		{"GET", "/api/v1/events", keepwatch.RoleViewer, h.events, ""},
		{"GET", "/api/v1/openapi.json", "", h.openapi, ""},
	}, append(append(append(append(h.notifyRoutes(), h.peopleRoutes()...), h.maintenanceRoutes()...), h.driveRoutes()...), h.trustRoutes()...)...)
}

// Register adds the API routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	for _, rt := range h.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, h.wrap(rt))
	}
	// Anything else under /api/ is a coded not_found, not the mux's text.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, h.Logger, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such API route"))
	})
}

func (h *Handler) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p keepwatch.Principal
		if rt.Role != "" {
			var err error
			if p, err = h.principal(r); err != nil {
				respond.Error(w, r, h.Logger, err)
				return
			}
			if !p.Role.Allows(rt.Role) {
				respond.Error(w, r, h.Logger, keepwatch.Errorf(keepwatch.EFORBIDDEN, "this needs the %s role", rt.Role))
				return
			}
		}
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		note := &auditNote{target: r.URL.Path}
		if unsafe {
			r = r.WithContext(context.WithValue(r.Context(), auditKey{}, note))
		}
		if err := rt.handle(w, r, p); err != nil {
			respond.Error(w, r, h.Logger, err)
			return
		}
		if unsafe && rt.Role != "" {
			target := note.target
			if target == r.URL.Path {
				if id := r.PathValue("id"); id != "" && strings.Contains(rt.Pattern, "/incidents/") {
					target = "incident " + id
				} else if slc := r.PathValue("slc"); slc != "" {
					target = strings.ToUpper(slc)
				}
			}
			h.Auth.Record(r, p, "api", rt.Action, target, note.detail)
		}
	})
}

func (h *Handler) principal(r *http.Request) (keepwatch.Principal, error) {
	return h.Auth.Principal(r)
}

func (h *Handler) today() keepwatch.Date { return keepwatch.DateOf(h.Now()) }

func (h *Handler) listInstallations(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "errors"
	}
	if filter != "errors" && filter != "all" {
		return keepwatch.Errorf(keepwatch.EINVALID, "filter must be errors or all")
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	views, err := h.Store.Installations(r.Context(), p.IntegratorID, h.Now())
	if err != nil {
		return err
	}
	counts := keepwatch.CountStatuses(views)
	out := []keepwatch.InstallationView{}
	for _, v := range views {
		if filter == "errors" && !v.Status.NeedsAttention() {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(v.Customer), q) && !strings.Contains(strings.ToLower(v.SLC), q) {
			continue
		}
		out = append(out, v)
	}
	respond.JSON(w, http.StatusOK, map[string]any{"installations": out, "counts": counts, "total": len(views)})
	return nil
}

func slcParam(r *http.Request) (string, error) {
	slc, err := keepwatch.NormalizeSLC(r.PathValue("slc"))
	if err != nil {
		return "", keepwatch.Errorf(keepwatch.ENOTFOUND, "no such installation in your account")
	}
	return slc, nil
}

func (h *Handler) getInstallation(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	v, err := h.Store.Installation(r.Context(), p.IntegratorID, slc, h.Now())
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) listServers(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	servers, err := h.Store.Servers(r.Context(), p.IntegratorID, slc)
	if err != nil {
		return err
	}
	if servers == nil {
		servers = []keepwatch.Server{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"servers": servers})
	return nil
}

func (h *Handler) listIncidents(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	state, err := keepwatch.ParseIncidentState(r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	limit := 500
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 5000 {
			return keepwatch.Errorf(keepwatch.EINVALID, "limit must be 1 to 5000")
		}
	}
	ins, err := h.Store.Incidents(r.Context(), p.IntegratorID, state, limit)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"incidents": ins})
	return nil
}

func incidentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
	}
	return id, nil
}

func (h *Handler) getIncident(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	n, err := h.Store.Incident(r.Context(), p.IntegratorID, id)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, n)
	return nil
}

// noteBody is the optional body of ack and resolve.
type noteBody struct {
	Note string `json:"note"`
}

func readNote(w http.ResponseWriter, r *http.Request) (string, error) {
	var b noteBody
	if r.ContentLength != 0 {
		if err := decode(w, r, &b); err != nil {
			return "", err
		}
	}
	if !keepwatch.ValidText(b.Note, keepwatch.MaxMessageLen) {
		return "", keepwatch.Errorf(keepwatch.EINVALID, "note must be at most %d printable characters", keepwatch.MaxMessageLen)
	}
	return b.Note, nil
}

func (h *Handler) ackIncident(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	note, err := readNote(w, r)
	if err != nil {
		return err
	}
	n, err := h.Store.AckIncident(r.Context(), p.IntegratorID, id, p.Actor, note)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, n)
	return nil
}

func (h *Handler) resolveIncident(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	note, err := readNote(w, r)
	if err != nil {
		return err
	}
	n, err := h.Store.ResolveIncident(r.Context(), p.IntegratorID, id, p.Actor, note)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, n)
	return nil
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	var b struct {
		SLC string `json:"slc"`
	}
	if err := decode(w, r, &b); err != nil {
		return err
	}
	if err := h.Auth.RegistrationAttempt(p, auth.ClientIP(r)); err != nil {
		return err
	}
	slc, err := keepwatch.NormalizeSLC(b.SLC)
	if err != nil {
		return err
	}
	if err := h.Store.Register(r.Context(), p.IntegratorID, slc); err != nil {
		return err
	}
	setAuditTarget(r, slc)
	h.Logger.Info("SLC registered", "integrator", p.IntegratorID, "slc", slc, "by", p.Actor)
	respond.JSON(w, http.StatusCreated, map[string]string{"slc": slc})
	return nil
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	if err := h.Store.Release(r.Context(), p.IntegratorID, slc); err != nil {
		return err
	}
	h.Logger.Info("SLC released", "integrator", p.IntegratorID, "slc", slc, "by", p.Actor)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// events streams the integrator's state changes as Server-Sent Events.
// The stream re-checks its credential every RecheckEvery, and at once when
// this node changes a credential: signing out, revoking the token,
// removing the user or changing its role ends it (the client reconnects
// with what rights it has now).
func (h *Handler) events(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	release, err := h.Auth.OpenStream(p)
	if err != nil {
		return err
	}
	defer release()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	changes, cancel := h.Broker.Subscribe(p.IntegratorID)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	every := h.KeepAlive
	if every == 0 {
		every = 15 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	recheckEvery := h.RecheckEvery
	if recheckEvery == 0 {
		recheckEvery = 800 * time.Millisecond
	}
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	credChanged := h.Auth.Changed()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-h.Closing:
			return nil
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case c := <-changes:
			b, _ := json.Marshal(c)
			fmt.Fprintf(w, "event: change\ndata: %s\n\n", b)
		case <-credChanged:
			credChanged = h.Auth.Changed()
			if h.credentialEnded(r, p) {
				return nil
			}
			continue
		case <-recheck.C:
			if h.credentialEnded(r, p) {
				return nil
			}
			continue
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// credentialEnded re-checks a stream's credential; a database failure
// does not end the stream (it is checked again next time).
func (h *Handler) credentialEnded(r *http.Request, p keepwatch.Principal) bool {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := h.Auth.StillValid(ctx, p)
	if auth.CredentialEnded(err) {
		h.Logger.Info("event stream closed: credential ended or changed", "integrator", p.IntegratorID, "actor", p.Actor, "why", keepwatch.ErrorMessage(err))
		return true
	}
	if err != nil {
		h.Logger.Warn("event stream: re-check credential", "err", err)
	}
	return false
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request, _ keepwatch.Principal) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
	return nil
}

// decode reads a JSON request body of at most maxBody bytes.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return respond.DecodeJSON(w, r, maxBody, v)
}
