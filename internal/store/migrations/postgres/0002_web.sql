-- The integrator dashboard: sessions, the audit log, incident assignment
-- and maintenance windows. Times are Unix milliseconds (BIGINT).

-- A dashboard login. Only the SHA-256 of the cookie value is stored, so a
-- copy of the database does not let anyone sign in.
CREATE TABLE sessions (
    id_hash       BYTEA PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    integrator_id BIGINT NOT NULL REFERENCES integrators (id),
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    remote_addr   TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Who did what, from the dashboard or the API.
CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id BIGINT NOT NULL REFERENCES integrators (id),
    at            BIGINT NOT NULL,
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
    incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    assigned_by TEXT NOT NULL,
    assigned_at BIGINT NOT NULL
);
CREATE INDEX incident_assignments_user ON incident_assignments (user_id);

-- A maintenance window mutes an installation: no notifications, shown as
-- "maintenance". Ending one early moves ends_at to the time it ended.
CREATE TABLE maintenance_windows (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id   BIGINT NOT NULL REFERENCES integrators (id),
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX maintenance_windows_installation ON maintenance_windows (installation_id, ends_at);
CREATE INDEX maintenance_windows_integrator ON maintenance_windows (integrator_id, ends_at);
