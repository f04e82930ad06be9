package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/secret"
)

// carePlusHorizon is how far ahead the registration center warns of Care
// Plus subscriptions ending.
const carePlusHorizon = 30

type consentRow struct {
	keepwatch.InstallationView
	Withdrawn int
}

type registrationsData struct {
	Total         int
	NeverReported []keepwatch.InstallationView
	Ending        []keepwatch.InstallationView
	Ended         []keepwatch.InstallationView
	Consent       []consentRow
	Today         keepwatch.Date
	// Reenrollments wait for approval: a known server name enrolled again
	// without its current key.
	Reenrollments []keepwatch.Reenrollment
	// NewKey is an enrollment key just issued, shown once: for NewKeySLC,
	// enrolling until NewKeyExpires.
	NewKey, NewKeySLC string
	NewKeyExpires     time.Time
}

func (h *Handler) registrations(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.renderRegistrations(w, r, rq, http.StatusOK, formState{})
}

// renderRegistrations shows the registration center, with a refused form
// shown again.
func (h *Handler) renderRegistrations(w http.ResponseWriter, r *http.Request, rq *request, status int, form formState) error {
	p, ctx, today := rq.principal(), r.Context(), h.today()
	views, err := h.Store.Installations(ctx, p.IntegratorID, h.now())
	if err != nil {
		return err
	}
	withdrawn, err := h.Store.ConsentWithdrawn(ctx, p.IntegratorID)
	if err != nil {
		return err
	}
	d := registrationsData{Total: len(views), Today: today}
	reen, err := h.Store.Reenrollments(ctx, p.IntegratorID, 100)
	if err != nil {
		return err
	}
	for _, re := range reen {
		if re.State == keepwatch.ReenrollmentPending {
			d.Reenrollments = append(d.Reenrollments, re)
		}
	}
	horizon := today.AddDays(carePlusHorizon)
	for _, v := range views {
		switch {
		case v.CarePlusUntil.Before(today):
			d.Ended = append(d.Ended, v)
		case !horizon.Before(v.CarePlusUntil):
			d.Ending = append(d.Ending, v)
		}
		if v.Status == keepwatch.StatusNeverReported {
			d.NeverReported = append(d.NeverReported, v)
		}
		if n := withdrawn[v.SLC]; n > 0 {
			d.Consent = append(d.Consent, consentRow{InstallationView: v, Withdrawn: n})
		}
	}
	byDate := func(vs []keepwatch.InstallationView) {
		slices.SortStableFunc(vs, func(a, b keepwatch.InstallationView) int {
			return a.CarePlusUntil.Time().Compare(b.CarePlusUntil.Time())
		})
	}
	byDate(d.Ending)
	byDate(d.Ended)
	if v, err := h.takeFlash(ctx, rq, "new-enrollment-key"); err != nil {
		return err
	} else if v != "" {
		d.NewKeySLC, d.NewKey, _ = strings.Cut(v, "\n")
		d.NewKeyExpires = h.now().Add(h.keyLifetime())
	}
	pg := h.newPage(r, rq, "Registration center", "registrations", d)
	pg.Form = form
	return h.render(w, status, "registrations", pg)
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, rq *request) error {
	raw := strings.TrimSpace(r.PostFormValue("slc"))
	if err := h.Auth.RegistrationAttempt(rq.principal(), auth.ClientIP(r)); err != nil {
		return err
	}
	p := rq.principal()
	slc, err := keepwatch.NormalizeSLC(raw)
	if err == nil {
		// Registering one's own SLC again changes nothing: say so, and
		// record nothing.
		if _, ierr := h.Store.RegisteredAt(r.Context(), p.IntegratorID, slc); ierr == nil {
			redirectDone(w, r, "/registrations", "mine")
			return nil
		} else if keepwatch.ErrorCode(ierr) != keepwatch.ENOTFOUND {
			return ierr
		}
		err = h.Store.Register(r.Context(), p.IntegratorID, slc)
	}
	if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ECONFLICT {
		// Show the refusal on the form; for an SLC someone else holds the
		// store's message is the same as for one that does not exist.
		return h.renderRegistrations(w, r, rq, statusOf(code), refusedForm(r, "register", "slc", err))
	}
	if err != nil {
		return err
	}
	h.audit(r, rq, "registration.add", slc, "")
	redirectDone(w, r, "/registrations", "registered")
	return nil
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request, rq *request) error {
	raw := strings.TrimSpace(r.PostFormValue("slc"))
	slc, err := keepwatch.NormalizeSLC(raw)
	if err == nil {
		err = h.Store.Release(r.Context(), rq.principal().IntegratorID, slc)
	}
	if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ENOTFOUND {
		return h.renderRegistrations(w, r, rq, statusOf(code), refusedForm(r, "release", "slc", err))
	}
	if err != nil {
		return err
	}
	h.audit(r, rq, "registration.release", slc, "")
	redirectDone(w, r, "/registrations", "released")
	return nil
}

func (h *Handler) approveReenrollment(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.decideReenrollment(w, r, rq, true)
}

func (h *Handler) rejectReenrollment(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.decideReenrollment(w, r, rq, false)
}

// decideReenrollment approves or rejects a pending re-enrollment, as
// POST /api/v1/reenrollments/{id}/approve|reject does.
func (h *Handler) decideReenrollment(w http.ResponseWriter, r *http.Request, rq *request, approve bool) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "no pending re-enrollment %s", r.PathValue("id"))
	}
	p := rq.principal()
	re, err := h.Store.DecideReenrollment(r.Context(), p.IntegratorID, id, approve, p.Actor)
	if err != nil {
		return err
	}
	action, done := "reenrollment.reject", "reenrollmentRejected"
	if approve {
		action, done = "reenrollment.approve", "reenrollmentApproved"
	}
	h.audit(r, rq, action, re.SLC+" / "+re.Server, "re-enrollment "+strconv.FormatInt(id, 10))
	redirectDone(w, r, "/registrations", done)
	return nil
}

func (h *Handler) keyLifetime() time.Duration {
	if h.KeyLifetime > 0 {
		return h.KeyLifetime
	}
	return keepwatch.EnrollmentKeyLifetime
}

// rotateEnrollmentKey issues a new enrollment key for one of the
// integrator's installations and shows it once, as
// POST /api/v1/installations/{slc}/enrollment-key does.
func (h *Handler) rotateEnrollmentKey(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := keepwatch.NormalizeSLC(strings.TrimSpace(r.PostFormValue("slc")))
	key := secret.New("kwe_")
	if err == nil {
		err = h.Store.SetIntegratorEnrollmentKey(r.Context(), rq.principal().IntegratorID, slc, secret.Hash(key))
	}
	if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ENOTFOUND {
		return h.renderRegistrations(w, r, rq, statusOf(code), refusedForm(r, "enrollmentkey", "slc", err))
	}
	if err != nil {
		return err
	}
	h.audit(r, rq, "enrollment_key.rotate", slc, "")
	if err := h.putFlash(r.Context(), rq, "new-enrollment-key", slc+"\n"+key); err != nil {
		return err
	}
	redirectTo(w, r, "/registrations", "enrollmentKeyIssued", "new-key-card")
	return nil
}

// revokeEnrollmentKey leaves one of the integrator's installations
// without an enrollment key.
func (h *Handler) revokeEnrollmentKey(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := keepwatch.NormalizeSLC(strings.TrimSpace(r.PostFormValue("slc")))
	if err == nil {
		err = h.Store.SetIntegratorEnrollmentKey(r.Context(), rq.principal().IntegratorID, slc, nil)
	}
	if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ENOTFOUND {
		return h.renderRegistrations(w, r, rq, statusOf(code), refusedForm(r, "enrollmentkey", "slc", err))
	}
	if err != nil {
		return err
	}
	h.audit(r, rq, "enrollment_key.revoke", slc, "")
	redirectDone(w, r, "/registrations", "enrollmentKeyRevoked")
	return nil
}
