package api

import (
	"net/http"
	"sort"
	"time"

	"keepwatch"
	"keepwatch/internal/respond"
)

// Drives: each drive's figures and forecast, its series for a chart, and
// the installation's expectations of its drives.
func (h *Handler) driveRoutes() []Route {
	return []Route{
		{"GET", "/api/v1/installations/{slc}/drives", keepwatch.RoleViewer, h.listDrives, ""},
		{"GET", "/api/v1/installations/{slc}/drives/series", keepwatch.RoleViewer, h.driveSeries, ""},
		{"GET", "/api/v1/installations/{slc}/drive-settings", keepwatch.RoleViewer, h.getDriveSettings, ""},
		{"PUT", "/api/v1/installations/{slc}/drive-settings", keepwatch.RoleTechnician, h.putDriveSettings, "drives.settings"},
	}
}

func (h *Handler) listDrives(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	now := h.Now()
	set, hs, err := h.Store.InstallationDrives(r.Context(), p.IntegratorID, slc, now)
	if err != nil {
		return err
	}
	out := make([]keepwatch.DriveStatus, 0, len(hs))
	for _, d := range hs {
		out = append(out, set.Status(d, now))
	}
	respond.JSON(w, http.StatusOK, map[string]any{"drives": out, "settings": settingsBody(set)})
	return nil
}

// seriesRanges are the spans a drive's chart shows.
var seriesRanges = map[string]time.Duration{"30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour, "365d": 365 * 24 * time.Hour}

// SeriesPointBody is a point of a drive's series as the API shows it.
type SeriesPointBody struct {
	At                time.Time  `json:"at"`
	LastAt            time.Time  `json:"last_at"`
	CapacityBytes     uint64     `json:"capacity_bytes"`
	FreeBytes         uint64     `json:"free_bytes"`
	UsedBytes         uint64     `json:"used_bytes"`
	UsedMinBytes      uint64     `json:"used_min_bytes"`
	UsedMaxBytes      uint64     `json:"used_max_bytes"`
	OldestRecordingAt *time.Time `json:"oldest_recording_at"`
	Samples           int        `json:"samples"`
}

func (h *Handler) driveSeries(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	path, server, rng := q.Get("path"), q.Get("server"), q.Get("range")
	if rng == "" {
		rng = "30d"
	}
	span, ok := seriesRanges[rng]
	if !ok {
		return keepwatch.Errorf(keepwatch.EINVALID, "range must be 30d, 90d or 365d")
	}
	if path == "" || !keepwatch.ValidText(path, keepwatch.MaxDrivePathLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "path is required: the drive's path, as its samples name it")
	}
	if server != "" && !keepwatch.ValidText(server, keepwatch.MaxServerNameLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "server is a server's name")
	}
	now := h.Now()
	from := now.Add(-span)
	points, err := h.Store.DriveSeries(r.Context(), p.IntegratorID, slc, server, path, from)
	if err != nil {
		return err
	}
	shown := keepwatch.SeriesRange(points, from, now)
	body := make([]SeriesPointBody, 0, len(shown))
	for _, x := range shown {
		b := SeriesPointBody{At: x.At.UTC(), LastAt: x.LastAt.UTC(), CapacityBytes: x.Capacity, FreeBytes: x.Free,
			UsedMinBytes: x.UsedMin, UsedMaxBytes: x.UsedMax, Samples: x.N}
		if x.Free < x.Capacity {
			b.UsedBytes = x.Capacity - x.Free
		}
		if !x.OldestRecording.IsZero() {
			o := x.OldestRecording.UTC()
			b.OldestRecordingAt = &o
		}
		body = append(body, b)
	}
	respond.JSON(w, http.StatusOK, map[string]any{"path": path, "range": rng,
		"resolution": keepwatch.SeriesResolution(span), "points": body})
	return nil
}

// driveSettingsBody is an installation's expectations of its drives.
type driveSettingsBody struct {
	ForecastHorizonDays   int                `json:"forecast_horizon_days"`
	RequiredRetentionDays int                `json:"required_retention_days"`
	Drives                []driveRequirement `json:"drives"`
}

type driveRequirement struct {
	Path                  string `json:"path"`
	RequiredRetentionDays int    `json:"required_retention_days"`
}

func settingsBody(s keepwatch.DriveSettings) driveSettingsBody {
	b := driveSettingsBody{ForecastHorizonDays: s.Horizon(), RequiredRetentionDays: s.RequiredRetentionDays, Drives: []driveRequirement{}}
	for p, d := range s.PerDrive {
		b.Drives = append(b.Drives, driveRequirement{p, d})
	}
	sort.Slice(b.Drives, func(i, j int) bool { return b.Drives[i].Path < b.Drives[j].Path })
	return b
}

func (h *Handler) getDriveSettings(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	s, err := h.Store.DriveSettings(r.Context(), p.IntegratorID, slc)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, settingsBody(s))
	return nil
}

func (h *Handler) putDriveSettings(w http.ResponseWriter, r *http.Request, p keepwatch.Principal) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	var b driveSettingsBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	set, err := keepwatch.NewDriveSettings(b.ForecastHorizonDays, b.RequiredRetentionDays, toPerDrive(b.Drives))
	if err != nil {
		return err
	}
	if err := h.applyDriveSettings(r, p, slc, set); err != nil {
		return err
	}
	setAudit(r, slc, set.String())
	respond.JSON(w, http.StatusOK, settingsBody(set))
	return nil
}

func toPerDrive(ds []driveRequirement) []keepwatch.DriveRequirement {
	out := make([]keepwatch.DriveRequirement, len(ds))
	for i, d := range ds {
		out[i] = keepwatch.DriveRequirement{Path: d.Path, RequiredRetentionDays: d.RequiredRetentionDays}
	}
	return out
}

// applyDriveSettings stores the settings and judges the installation's
// drives against them at once.
func (h *Handler) applyDriveSettings(r *http.Request, p keepwatch.Principal, slc string, set keepwatch.DriveSettings) error {
	failed, err := keepwatch.ApplyDriveSettings(r.Context(), h.Store, p.IntegratorID, slc, set, h.Now(), h.Publish)
	for id, err := range failed {
		h.Logger.Warn("judge drives", "server", id, "err", err)
	}
	return err
}
