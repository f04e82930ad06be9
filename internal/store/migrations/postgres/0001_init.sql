-- keepwatch schema, PostgreSQL. Times are Unix milliseconds (BIGINT).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('rev', 0);

CREATE TABLE integrators (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id BIGINT NOT NULL REFERENCES integrators (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_integrator ON users (integrator_id);

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integrator_id BIGINT NOT NULL REFERENCES integrators (id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_integrator ON api_tokens (integrator_id);

CREATE TABLE installations (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slc                 TEXT NOT NULL UNIQUE,
    customer            TEXT NOT NULL,
    product             TEXT NOT NULL,
    cameras             BIGINT NOT NULL,
    care_plus_until     TEXT NOT NULL,
    enrollment_key_hash BYTEA NOT NULL,
    integrator_id       BIGINT REFERENCES integrators (id),
    registered_at       BIGINT,
    created_at          BIGINT NOT NULL,
    rev                 BIGINT NOT NULL
);
CREATE INDEX installations_integrator ON installations (integrator_id);
CREATE INDEX installations_rev ON installations (rev);

CREATE TABLE servers (
    id              TEXT PRIMARY KEY,
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    name            TEXT NOT NULL,
    report_key      BYTEA NOT NULL,
    state           TEXT NOT NULL,
    state_since     BIGINT NOT NULL,
    consent         BIGINT NOT NULL,
    interval_ms     BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL DEFAULT 0,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    agent_version   TEXT NOT NULL DEFAULT '',
    enrolled_at     BIGINT NOT NULL,
    revoked_at      BIGINT,
    rev             BIGINT NOT NULL
);
CREATE UNIQUE INDEX servers_installation_name ON servers (installation_id, name);
CREATE INDEX servers_rev ON servers (rev);

-- Active state conditions, one row per (server, kind, subject).
CREATE TABLE conditions (
    server_id TEXT NOT NULL REFERENCES servers (id),
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    severity  TEXT NOT NULL,
    since     BIGINT NOT NULL,
    message   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (server_id, kind, subject)
);

CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    server_id       TEXT NOT NULL REFERENCES servers (id),
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL DEFAULT '',
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL
);
CREATE INDEX events_installation ON events (installation_id, occurred_at);

-- Every change of a server's state or of a condition: the history, and the
-- outbox that notification delivery reads.
CREATE TABLE state_changes (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    server_id       TEXT NOT NULL REFERENCES servers (id),
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    severity        TEXT NOT NULL,
    active          BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL
);
CREATE INDEX state_changes_installation ON state_changes (installation_id, at);

CREATE TABLE incidents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    server_id       TEXT REFERENCES servers (id), -- NULL for site_unreachable
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    severity        TEXT NOT NULL,
    is_event        BIGINT NOT NULL,
    state           TEXT NOT NULL,
    opened_at       BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    count           BIGINT NOT NULL DEFAULT 1,
    acked_at        BIGINT,
    acked_by        TEXT NOT NULL DEFAULT '',
    ack_note        TEXT NOT NULL DEFAULT '',
    resolved_at     BIGINT,
    resolved_by     TEXT NOT NULL DEFAULT '',
    resolve_note    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_installation_state ON incidents (installation_id, state);
CREATE INDEX incidents_open_key ON incidents (server_id, kind, subject) WHERE state <> 'resolved';
