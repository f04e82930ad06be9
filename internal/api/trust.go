package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"keepwatch"
	"keepwatch/internal/respond"
)

// Enrollment decisions: re-enrollments of known server names that wait
// for approval, and the installations' enrollment keys.
func (h *Handler) trustRoutes() []Route {
	return []Route{
		{"GET", "/api/v1/reenrollments", keepwatch.RoleTechnician, h.listReenrollments, ""},
		{"POST", "/api/v1/reenrollments/{id}/approve", keepwatch.RoleTechnician, h.approveReenrollment, "reenrollment.approve"},
		{"POST", "/api/v1/reenrollments/{id}/reject", keepwatch.RoleTechnician, h.rejectReenrollment, "reenrollment.reject"},
		{"POST", "/api/v1/installations/{slc}/enrollment-key", keepwatch.RoleOwner, h.rotateEnrollmentKey, "enrollment_key.rotate"},
		{"DELETE", "/api/v1/installations/{slc}/enrollment-key", keepwatch.RoleOwner, h.revokeEnrollmentKey, "enrollment_key.revoke"},
	}
}

func (h *Handler) listReenrollments(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	list, err := h.Store.Reenrollments(r.Context(), p.IntegratorID, 100)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"reenrollments": list})
	return nil
}

func (h *Handler) approveReenrollment(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	return h.decideReenrollment(w, r, p, true)
}

func (h *Handler) rejectReenrollment(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	return h.decideReenrollment(w, r, p, false)
}

func (h *Handler) decideReenrollment(w http.ResponseWriter, r *http.Request, p keepwatch.Principal, approve bool) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "no pending re-enrollment %s", r.PathValue("id"))
	}
	re, err := h.Store.DecideReenrollment(r.Context(), p.IntegratorID, id, approve, p.Actor)
	if err != nil {
		return err
	}
	setAudit(r, re.SLC+" / "+re.Server, "re-enrollment "+strconv.FormatInt(id, 10))
	respond.JSON(w, http.StatusOK, re)
	return nil
}

// rotateEnrollmentKey issues a new enrollment key for one of the
// integrator's installations and shows it once; the old key no longer
// enrolls, servers already enrolled keep reporting.
func (h *Handler) rotateEnrollmentKey(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	b := make([]byte, 32)
	rand.Read(b)
	key := "kwe_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	if err := h.Store.SetIntegratorEnrollmentKey(r.Context(), p.IntegratorID, slc, sum[:]); err != nil {
		return err
	}
	lifetime := h.KeyLifetime
	if lifetime == 0 {
		lifetime = keepwatch.EnrollmentKeyLifetime
	}
	respond.JSON(w, http.StatusCreated, map[string]any{
		"slc": slc, "enrollment_key": key, "expires_at": h.Now().Add(lifetime).UTC().Truncate(time.Second),
	})
	return nil
}

// revokeEnrollmentKey leaves the installation without an enrollment key.
func (h *Handler) revokeEnrollmentKey(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	if err := h.Store.SetIntegratorEnrollmentKey(r.Context(), p.IntegratorID, slc, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
