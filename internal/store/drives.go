package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"time"

	"keepwatch"
)

// Drives: each server's drives with their latest sample (drives), their
// series at three resolutions (drive_points, keepwatch.PlanCompaction
// decides), and each installation's expectations of them (the two
// columns of installations, drive_requirements).

// resCode is a resolution as stored.
func resCode(r keepwatch.Resolution) int {
	switch r {
	case keepwatch.ResHour:
		return 1
	case keepwatch.ResDay:
		return 2
	}
	return 0
}

func resOf(code int) keepwatch.Resolution {
	switch code {
	case 1:
		return keepwatch.ResHour
	case 2:
		return keepwatch.ResDay
	}
	return keepwatch.ResRaw
}

// bytesCol stores a byte count: sizes above the signed 64-bit range (16
// EiB; ingest refuses them) are held at its top.
func bytesCol(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

func millisOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return keepwatch.TimeFromMillis(ms)
}

// storeDrives records a report's drive samples: each drive's latest
// sample, and a raw point per sample, keeping one raw point per drive per
// keepwatch.SeriesRawSlot (the latest of the slot), so that a sender
// faster than the slot stores nothing more.
func (t *Tx) storeDrives(info serverInfo, rs []keepwatch.DriveReading) error {
	for _, r := range rs {
		role, err := keepwatch.ParseDriveRole(string(r.Role))
		if err != nil {
			return err
		}
		at := r.At.UnixMilli()
		var id int64
		err = t.queryRow(`INSERT INTO drives (installation_id, server_id, path, role, last_at, capacity, free, oldest_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (server_id, path) DO UPDATE SET
				role = CASE WHEN excluded.last_at >= drives.last_at THEN excluded.role ELSE drives.role END,
				capacity = CASE WHEN excluded.last_at >= drives.last_at THEN excluded.capacity ELSE drives.capacity END,
				free = CASE WHEN excluded.last_at >= drives.last_at THEN excluded.free ELSE drives.free END,
				oldest_at = CASE WHEN excluded.last_at >= drives.last_at THEN excluded.oldest_at ELSE drives.oldest_at END,
				last_at = CASE WHEN excluded.last_at >= drives.last_at THEN excluded.last_at ELSE drives.last_at END
			RETURNING id`,
			info.installationID, info.id, r.Path, string(role), at, bytesCol(r.Capacity), bytesCol(r.Free), millisOrZero(r.OldestRecording)).Scan(&id)
		if err != nil {
			return dbErr(err)
		}
		p := keepwatch.PointOf(r.DriveSample)
		if err := t.upsertPoint(id, p); err != nil {
			return err
		}
		slot := p.At.Truncate(keepwatch.SeriesRawSlot).UnixMilli()
		end := slot + keepwatch.SeriesRawSlot.Milliseconds()
		if _, err := t.exec(`DELETE FROM drive_points WHERE drive_id = ? AND res = 0 AND at >= ? AND at < ?
			AND at < (SELECT MAX(at) FROM drive_points WHERE drive_id = ? AND res = 0 AND at >= ? AND at < ?)`,
			id, slot, end, id, slot, end); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) upsertPoint(driveID int64, p keepwatch.SeriesPoint) error {
	_, err := t.exec(`INSERT INTO drive_points (drive_id, res, at, last_at, capacity, free, used_min, used_max, oldest_at, n)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (drive_id, res, at) DO UPDATE SET last_at = excluded.last_at, capacity = excluded.capacity,
			free = excluded.free, used_min = excluded.used_min, used_max = excluded.used_max,
			oldest_at = excluded.oldest_at, n = excluded.n`,
		driveID, resCode(p.Res), p.At.UnixMilli(), p.LastAt.UnixMilli(), bytesCol(p.Capacity), bytesCol(p.Free),
		bytesCol(p.UsedMin), bytesCol(p.UsedMax), millisOrZero(p.OldestRecording), p.N)
	return err
}

// AddDriveSamples stores drive samples of a server outside a report (the
// demo's history, tests); reports carry theirs through ApplyReport.
func (s *Store) AddDriveSamples(ctx context.Context, serverID string, rs []keepwatch.DriveReading) error {
	return s.tx(ctx, func(t *Tx) error {
		info, err := t.serverInfo(serverID)
		if err != nil {
			return err
		}
		return t.storeDrives(info, rs)
	})
}

const pointCols = `res, at, last_at, capacity, free, used_min, used_max, oldest_at, n`

func scanPoint(r scanner) (keepwatch.SeriesPoint, error) {
	var p keepwatch.SeriesPoint
	var res int
	var at, last, capacity, free, umin, umax, oldest int64
	err := r.Scan(&res, &at, &last, &capacity, &free, &umin, &umax, &oldest, &p.N)
	p.Res, p.At, p.LastAt, p.OldestRecording = resOf(res), keepwatch.TimeFromMillis(at), keepwatch.TimeFromMillis(last), timeOrZero(oldest)
	p.Capacity, p.Free, p.UsedMin, p.UsedMax = uint64(capacity), uint64(free), uint64(umin), uint64(umax)
	return p, err
}

// DriveCompactEvery is how often each drive's series is compacted.
const DriveCompactEvery = time.Hour

// CompactDrives compacts the series of at most limit drives not compacted
// within DriveCompactEvery of now, each in a transaction of its own
// (keepwatch.PlanCompaction), and forgets drives silent for longer than
// keepwatch.SeriesDailyKeep. It returns how many drives it compacted.
func (s *Store) CompactDrives(ctx context.Context, now time.Time, limit int) (int, error) {
	rows, err := s.query(ctx, `SELECT id, last_at FROM drives WHERE compacted_at <= ? ORDER BY compacted_at LIMIT ?`,
		now.Add(-DriveCompactEvery).UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	type due struct{ id, last int64 }
	ds, err := scanAll(rows, func(r scanner) (due, error) {
		var d due
		return d, r.Scan(&d.id, &d.last)
	})
	if err != nil {
		return 0, err
	}
	for i, d := range ds {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := s.compactDrive(ctx, d.id, keepwatch.TimeFromMillis(d.last), now); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}

func (s *Store) compactDrive(ctx context.Context, id int64, last, now time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		if now.Sub(last) > keepwatch.SeriesDailyKeep {
			if _, err := t.exec(`DELETE FROM drive_points WHERE drive_id = ?`, id); err != nil {
				return err
			}
			_, err := t.exec(`DELETE FROM drives WHERE id = ?`, id)
			return err
		}
		// The drive's row first, as a report does: one writer of its
		// points at a time.
		var locked int64
		if err := t.queryRow(`SELECT id FROM drives WHERE id = ?`+s.forUpdate(), id).Scan(&locked); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return dbErr(err)
		}
		rows, err := t.query(`SELECT `+pointCols+` FROM drive_points WHERE drive_id = ?`, id)
		if err != nil {
			return err
		}
		points, err := scanAll(rows, scanPoint)
		if err != nil {
			return err
		}
		plan := keepwatch.PlanCompaction(points, now)
		for _, p := range plan.Upsert {
			if err := t.upsertPoint(id, p); err != nil {
				return err
			}
		}
		for _, k := range plan.Delete {
			if _, err := t.exec(`DELETE FROM drive_points WHERE drive_id = ? AND res = ? AND at = ?`, id, resCode(k.Res), k.At.UnixMilli()); err != nil {
				return err
			}
		}
		_, err = t.exec(`UPDATE drives SET compacted_at = ? WHERE id = ?`, now.UnixMilli(), id)
		return err
	})
}

// driveRow is a drive as stored, with the name of its server.
type driveRow struct {
	id     int64
	server string
	path   string
	role   string
}

// histories loads drives and their points since from.
func (s *Store) histories(ctx context.Context, where string, from time.Time, args ...any) ([]keepwatch.DriveHistory, error) {
	rows, err := s.query(ctx, `SELECT d.id, s.name, d.path, d.role FROM drives d JOIN servers s ON s.id = d.server_id
		WHERE `+where+` ORDER BY s.name, d.path`, args...)
	if err != nil {
		return nil, err
	}
	ds, err := scanAll(rows, func(r scanner) (driveRow, error) {
		var d driveRow
		return d, r.Scan(&d.id, &d.server, &d.path, &d.role)
	})
	if err != nil {
		return nil, err
	}
	out := make([]keepwatch.DriveHistory, 0, len(ds))
	for _, d := range ds {
		rows, err := s.query(ctx, `SELECT `+pointCols+` FROM drive_points WHERE drive_id = ? AND at >= ? ORDER BY at`, d.id, from.UnixMilli())
		if err != nil {
			return nil, err
		}
		points, err := scanAll(rows, scanPoint)
		if err != nil {
			return nil, err
		}
		out = append(out, keepwatch.DriveHistory{Server: d.server, Path: d.path, Role: keepwatch.DriveRole(d.role), Samples: keepwatch.Samples(points)})
	}
	return out, nil
}

// forecastFrom is the earliest point a forecast at now may use: the
// window, and the day an hourly or daily bucket may start before it.
func forecastFrom(now time.Time) time.Time {
	return now.Add(-keepwatch.ForecastWindow - 24*time.Hour)
}

// ServerDrives returns the settings of a server's installation and the
// server's drives with their samples of the forecast's window.
func (s *Store) ServerDrives(ctx context.Context, serverID string, now time.Time) (keepwatch.DriveSettings, []keepwatch.DriveHistory, error) {
	var inst int64
	err := s.queryRow(ctx, `SELECT installation_id FROM servers WHERE id = ?`, serverID).Scan(&inst)
	if errors.Is(err, sql.ErrNoRows) {
		return keepwatch.DriveSettings{}, nil, keepwatch.Errorf(keepwatch.ENOTFOUND, "unknown server")
	}
	if err != nil {
		return keepwatch.DriveSettings{}, nil, dbErr(err)
	}
	set, err := s.driveSettings(ctx, inst)
	if err != nil {
		return set, nil, err
	}
	hs, err := s.histories(ctx, `d.server_id = ?`, forecastFrom(now), serverID)
	return set, hs, err
}

// installationID finds one of the integrator's installations.
func (s *Store) installationID(ctx context.Context, integratorID int64, slc string) (int64, error) {
	var id int64
	err := s.queryRow(ctx, `SELECT id FROM installations WHERE integrator_id = ? AND slc = ?`, integratorID, slc).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound(slc)
	}
	return id, dbErr(err)
}

// InstallationDrives returns an installation's drive settings and its
// drives (every server's) with their samples of the forecast's window.
func (s *Store) InstallationDrives(ctx context.Context, integratorID int64, slc string, now time.Time) (keepwatch.DriveSettings, []keepwatch.DriveHistory, error) {
	inst, err := s.installationID(ctx, integratorID, slc)
	if err != nil {
		return keepwatch.DriveSettings{}, nil, err
	}
	set, err := s.driveSettings(ctx, inst)
	if err != nil {
		return set, nil, err
	}
	hs, err := s.histories(ctx, `d.installation_id = ? AND s.revoked_at IS NULL`, forecastFrom(now), inst)
	return set, hs, err
}

// DriveSeries returns the stored points of one drive of an installation
// that end at or after from: of the server named, or, when server is "",
// of the first server (by name) that has a drive with that path.
func (s *Store) DriveSeries(ctx context.Context, integratorID int64, slc, server, path string, from time.Time) ([]keepwatch.SeriesPoint, error) {
	inst, err := s.installationID(ctx, integratorID, slc)
	if err != nil {
		return nil, err
	}
	var id int64
	err = s.queryRow(ctx, `SELECT d.id FROM drives d JOIN servers s ON s.id = d.server_id
		WHERE d.installation_id = ? AND d.path = ? AND (? = '' OR s.name = ?) ORDER BY s.name LIMIT 1`, inst, path, server, server).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such drive in this installation")
	}
	if err != nil {
		return nil, dbErr(err)
	}
	rows, err := s.query(ctx, `SELECT `+pointCols+` FROM drive_points WHERE drive_id = ? AND at >= ? ORDER BY at`,
		id, from.Add(-24*time.Hour).UnixMilli())
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanPoint)
}

func (s *Store) driveSettings(ctx context.Context, inst int64) (keepwatch.DriveSettings, error) {
	var set keepwatch.DriveSettings
	if err := s.queryRow(ctx, `SELECT forecast_horizon_days, required_retention_days FROM installations WHERE id = ?`, inst).
		Scan(&set.HorizonDays, &set.RequiredRetentionDays); err != nil {
		return set, dbErr(err)
	}
	rows, err := s.query(ctx, `SELECT path, required_retention_days FROM drive_requirements WHERE installation_id = ? ORDER BY path`, inst)
	if err != nil {
		return set, err
	}
	type req struct {
		path string
		days int
	}
	rs, err := scanAll(rows, func(r scanner) (req, error) {
		var q req
		return q, r.Scan(&q.path, &q.days)
	})
	if err != nil {
		return set, err
	}
	for _, q := range rs {
		if set.PerDrive == nil {
			set.PerDrive = map[string]int{}
		}
		set.PerDrive[q.path] = q.days
	}
	return set, nil
}

// DriveSettings returns an installation's expectations of its drives.
func (s *Store) DriveSettings(ctx context.Context, integratorID int64, slc string) (keepwatch.DriveSettings, error) {
	inst, err := s.installationID(ctx, integratorID, slc)
	if err != nil {
		return keepwatch.DriveSettings{}, err
	}
	return s.driveSettings(ctx, inst)
}

// SetDriveSettings replaces an installation's expectations of its drives
// and returns the ids of its servers that have drives, to be judged
// again.
func (s *Store) SetDriveSettings(ctx context.Context, integratorID int64, slc string, set keepwatch.DriveSettings) ([]string, error) {
	if err := set.Validate(); err != nil {
		return nil, err
	}
	var servers []string
	err := s.tx(ctx, func(t *Tx) error {
		var inst int64
		err := t.queryRow(`SELECT id FROM installations WHERE integrator_id = ? AND slc = ?`, integratorID, slc).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(slc)
		}
		if err != nil {
			return dbErr(err)
		}
		if _, err := t.exec(`UPDATE installations SET forecast_horizon_days = ?, required_retention_days = ? WHERE id = ?`,
			set.HorizonDays, set.RequiredRetentionDays, inst); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM drive_requirements WHERE installation_id = ?`, inst); err != nil {
			return err
		}
		for p, d := range set.PerDrive {
			if _, err := t.exec(`INSERT INTO drive_requirements (installation_id, path, required_retention_days) VALUES (?, ?, ?)`, inst, p, d); err != nil {
				return err
			}
		}
		rows, err := t.query(`SELECT DISTINCT server_id FROM drives WHERE installation_id = ? ORDER BY server_id`, inst)
		if err != nil {
			return err
		}
		servers, err = scanAll(rows, func(r scanner) (string, error) {
			var id string
			return id, r.Scan(&id)
		})
		return err
	})
	return servers, err
}

// ServersToJudge returns the servers whose drive conditions may have
// expired without a report to clear them: those holding a
// storage_forecast or retention_short whose drive was last measured
// before stale.
func (s *Store) ServersToJudge(ctx context.Context, stale time.Time) ([]string, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT c.server_id FROM conditions c
		LEFT JOIN drives d ON d.server_id = c.server_id AND d.path = c.subject
		WHERE c.origin = 'keepwatch' AND c.kind IN (?, ?) AND (d.id IS NULL OR d.last_at < ?) ORDER BY c.server_id`,
		keepwatch.KindStorageForecast, keepwatch.KindRetentionShort, stale.UnixMilli())
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(r scanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	})
}

// DriveSeriesSize measures the stored series: its rows, and its bytes
// (SQLite: the pages of drive_points; PostgreSQL: the table with its
// indexes).
func (s *Store) DriveSeriesSize(ctx context.Context) (rows, bytes int64, err error) {
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM drive_points`).Scan(&rows); err != nil {
		return 0, 0, dbErr(err)
	}
	q := `SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'drive_points'`
	if s.dialect == Postgres {
		q = `SELECT pg_total_relation_size('drive_points')`
	}
	err = s.queryRow(ctx, q).Scan(&bytes)
	return rows, bytes, dbErr(err)
}
