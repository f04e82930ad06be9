-- Drives and their history. A drive is a path on a server, as its samples
-- name it; the row holds its latest sample, so the drives view reads one
-- row per drive. compacted_at paces the background compaction.
CREATE TABLE drives (
    id              INTEGER PRIMARY KEY,
    installation_id INTEGER NOT NULL REFERENCES installations (id),
    server_id       TEXT NOT NULL REFERENCES servers (id),
    path            TEXT NOT NULL,
    role            TEXT NOT NULL,
    last_at         INTEGER NOT NULL,
    capacity        INTEGER NOT NULL,
    free            INTEGER NOT NULL,
    oldest_at       INTEGER NOT NULL DEFAULT 0,
    compacted_at    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (server_id, path)
);
CREATE INDEX drives_installation ON drives (installation_id);
CREATE INDEX drives_compacted ON drives (compacted_at);

-- A drive's series (keepwatch.SeriesPoint): raw samples (res 0), hourly
-- (1) and daily (2) aggregates, keyed by the sample's time or the
-- bucket's start. oldest_at 0: not measured.
CREATE TABLE drive_points (
    drive_id  INTEGER NOT NULL REFERENCES drives (id),
    res       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    last_at   INTEGER NOT NULL,
    capacity  INTEGER NOT NULL,
    free      INTEGER NOT NULL,
    used_min  INTEGER NOT NULL,
    used_max  INTEGER NOT NULL,
    oldest_at INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (drive_id, res, at)
) WITHOUT ROWID;

-- An installation's expectations of its drives (keepwatch.DriveSettings):
-- the forecast horizon and the retention required of recording drives
-- (0: the default horizon; no retention required), and the retention
-- required of particular drives, by path.
ALTER TABLE installations ADD COLUMN forecast_horizon_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE installations ADD COLUMN required_retention_days INTEGER NOT NULL DEFAULT 0;
CREATE TABLE drive_requirements (
    installation_id         INTEGER NOT NULL REFERENCES installations (id),
    path                    TEXT NOT NULL,
    required_retention_days INTEGER NOT NULL,
    PRIMARY KEY (installation_id, path)
);

-- Resolved incidents are pruned by age once their period is over.
CREATE INDEX incidents_resolved ON incidents (resolved_at) WHERE state = 'resolved';
