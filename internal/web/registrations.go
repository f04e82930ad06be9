package web

import (
	"net/http"
	"slices"
	"strings"

	"keepwatch"
	"keepwatch/internal/auth"
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
	SLC           string // the form's value after a refused registration
	Today         keepwatch.Date
}

func (h *Handler) registrations(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.renderRegistrations(w, r, rq, http.StatusOK, "", "")
}

// renderRegistrations shows the registration center, with errMsg when a
// registration was refused.
func (h *Handler) renderRegistrations(w http.ResponseWriter, r *http.Request, rq *request, status int, slc, errMsg string) error {
	p, ctx, today := rq.principal(), r.Context(), h.today()
	views, err := h.Store.Installations(ctx, p.IntegratorID, h.now())
	if err != nil {
		return err
	}
	withdrawn, err := h.Store.ConsentWithdrawn(ctx, p.IntegratorID)
	if err != nil {
		return err
	}
	d := registrationsData{Total: len(views), SLC: slc, Today: today}
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
	pg := h.newPage(r, rq, "Registration center", "registrations", d)
	pg.Error = errMsg
	return h.render(w, status, "registrations", pg)
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, rq *request) error {
	raw := strings.TrimSpace(r.PostFormValue("slc"))
	if err := h.Auth.RegistrationAttempt(rq.principal(), auth.ClientIP(r)); err != nil {
		return err
	}
	slc, err := keepwatch.NormalizeSLC(raw)
	if err == nil {
		p := rq.principal()
		err = h.Store.Register(r.Context(), p.IntegratorID, slc)
	}
	if code := keepwatch.ErrorCode(err); code == keepwatch.EINVALID || code == keepwatch.ECONFLICT {
		// Show the refusal on the form; for an SLC someone else holds the
		// store's message is the same as for one that does not exist.
		return h.renderRegistrations(w, r, rq, statusOf(code), raw, keepwatch.ErrorMessage(err))
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
	if err != nil {
		return h.renderRegistrations(w, r, rq, http.StatusBadRequest, "", keepwatch.ErrorMessage(err))
	}
	p := rq.principal()
	if err := h.Store.Release(r.Context(), p.IntegratorID, slc); err != nil {
		if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
			return h.renderRegistrations(w, r, rq, http.StatusNotFound, "", keepwatch.ErrorMessage(err))
		}
		return err
	}
	h.audit(r, rq, "registration.release", slc, "")
	redirectDone(w, r, "/registrations", "released")
	return nil
}
