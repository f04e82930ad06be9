-- Incident transitions and the notification pipeline.

-- A server_unavailable incident that is part of a site outage points to
-- the site_unreachable incident that speaks for it.
ALTER TABLE incidents ADD COLUMN parent_id BIGINT;
ALTER TABLE incidents ADD COLUMN annotation TEXT NOT NULL DEFAULT '';
CREATE INDEX incidents_parent ON incidents (parent_id);
CREATE INDEX incidents_state_last ON incidents (state, is_event, last_at);

-- Every incident transition: the history, and what notification rules
-- are evaluated against (in id order).
CREATE TABLE incident_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     BIGINT NOT NULL REFERENCES incidents (id),
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    type            TEXT NOT NULL,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

CREATE TABLE channels (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id BIGINT NOT NULL REFERENCES integrators (id),
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    target        TEXT NOT NULL,
    secret        TEXT NOT NULL DEFAULT '',
    digest        BIGINT NOT NULL DEFAULT 0,
    enabled       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL
);
CREATE INDEX channels_integrator ON channels (integrator_id);

CREATE TABLE rules (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id   BIGINT NOT NULL REFERENCES integrators (id),
    name            TEXT NOT NULL,
    channel_id      BIGINT NOT NULL REFERENCES channels (id),
    kinds           TEXT NOT NULL DEFAULT '',
    min_severity    TEXT NOT NULL DEFAULT 'warning',
    slcs            TEXT NOT NULL DEFAULT '',
    min_duration_ms BIGINT NOT NULL DEFAULT 0,
    repeat_ms       BIGINT NOT NULL DEFAULT 0,
    unacked_only    BIGINT NOT NULL DEFAULT 0,
    enabled         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL
);
CREATE INDEX rules_integrator ON rules (integrator_id);

-- The outbox. dedup_key makes enqueueing idempotent: evaluating the same
-- transition twice (after a crash, or on two nodes) yields one row.
CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id   BIGINT NOT NULL REFERENCES integrators (id),
    channel_id      BIGINT NOT NULL REFERENCES channels (id),
    rule_id         BIGINT,
    incident_id     BIGINT,
    installation_id BIGINT,
    type            TEXT NOT NULL,
    dedup_key       TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    not_before      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX notifications_due ON notifications (state, not_before);
CREATE INDEX notifications_incident ON notifications (incident_id);
CREATE INDEX notifications_integrator ON notifications (integrator_id, id);

INSERT INTO meta (key, value) VALUES ('notify_cursor', 0);
