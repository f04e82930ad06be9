-- The integrator dashboard: sessions, the audit log, incident assignment
-- and maintenance windows. Times are Unix milliseconds (INTEGER).

-- A dashboard login. Only the SHA-256 of the cookie value is stored, so a
-- copy of the database does not let anyone sign in.
CREATE TABLE sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    remote_addr   TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Who did what, from the dashboard or the API.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL DEFAULT '',
    detail        TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT '',
    remote_addr   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_integrator ON audit_log (integrator_id, at);

-- The user an incident is assigned to (at most one).
CREATE TABLE incident_assignments (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    assigned_by TEXT NOT NULL,
    assigned_at INTEGER NOT NULL
);
CREATE INDEX incident_assignments_user ON incident_assignments (user_id);

-- A maintenance window mutes an installation: no notifications, shown as
-- "maintenance". Ending one early moves ends_at to the time it ended.
CREATE TABLE maintenance_windows (
    id              INTEGER PRIMARY KEY,
    integrator_id   INTEGER NOT NULL REFERENCES integrators (id),
    installation_id INTEGER NOT NULL REFERENCES installations (id),
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX maintenance_windows_installation ON maintenance_windows (installation_id, ends_at);
CREATE INDEX maintenance_windows_integrator ON maintenance_windows (integrator_id, ends_at);
