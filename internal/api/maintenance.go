package api

import (
	"net/http"
	"strconv"
	"time"

	"keepwatch"
	"keepwatch/internal/respond"
)

// Maintenance windows: listed, set and stopped the way the dashboard does,
// validated by keepwatch.NewMaintenance and keepwatch.MaintenanceWindow.Stop.
func (h *Handler) maintenanceRoutes() []Route {
	return []Route{
		{"GET", "/api/v1/installations/{slc}/maintenance", keepwatch.RoleViewer, h.listMaintenance, ""},
		{"POST", "/api/v1/installations/{slc}/maintenance", keepwatch.RoleTechnician, h.setMaintenance, "maintenance.set"},
		{"DELETE", "/api/v1/installations/{slc}/maintenance/{id}", keepwatch.RoleTechnician, h.stopMaintenance, "maintenance.stop"},
	}
}

func (h *Handler) listMaintenance(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	// The installation must be the integrator's: an empty list says
	// nothing about anyone else's.
	if _, err := h.Store.RegisteredAt(r.Context(), p.IntegratorID, slc); err != nil {
		return err
	}
	ms, err := h.Store.Maintenance(r.Context(), p.IntegratorID, slc, h.Now())
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []keepwatch.MaintenanceWindow{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"maintenance": ms})
	return nil
}

// maintenanceBody is a window asked for: a start (omitted: now) and an
// end, or a duration instead of the end.
type maintenanceBody struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationSeconds int64     `json:"duration_seconds"`
	Reason          string    `json:"reason"`
}

func (h *Handler) setMaintenance(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	var b maintenanceBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	now := h.Now()
	start := b.Start
	if start.IsZero() {
		start = now
	}
	end := b.End
	switch {
	case !end.IsZero() && b.DurationSeconds != 0:
		return keepwatch.Errorf(keepwatch.EINVALID, "give either end or duration_seconds, not both")
	case end.IsZero() && b.DurationSeconds <= 0:
		return keepwatch.Errorf(keepwatch.EINVALID, "give the window's end or its duration_seconds")
	case end.IsZero():
		end = start.Add(time.Duration(min(b.DurationSeconds, int64(keepwatch.MaxMaintenance/time.Second)+1)) * time.Second)
	}
	m, err := keepwatch.NewMaintenance(slc, start, end, b.Reason, p.Actor, now)
	if err != nil {
		return err
	}
	if m, err = h.Store.SetMaintenance(r.Context(), p.IntegratorID, m); err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, m)
	return nil
}

func (h *Handler) stopMaintenance(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such maintenance window")
	}
	m, cancelled, err := h.Store.StopMaintenance(r.Context(), p.IntegratorID, slc, id, h.Now())
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"maintenance": m, "cancelled": cancelled})
	return nil
}
