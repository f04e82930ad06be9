-- Trust in the ingest protocol. A re-enrollment of a known server name
-- without proof of its current report key waits, with its new key sealed
-- in pending_key, for the integrator's approval; reenrollments keeps every
-- such request and its decision. next_key is the key of an in-band
-- rotation the agent asked for: its first use replaces report_key.
-- rotate_required makes keepwatch ask the agent to rotate. status_seq is the number of the last
-- status report accepted under the current key (a gap means one was
-- lost). enrollment_key_issued_at dates the
-- enrollment key, which expires a configured time after it; a revoked
-- key has an empty hash.
ALTER TABLE servers ADD COLUMN pending_key BYTEA;
ALTER TABLE servers ADD COLUMN next_key BYTEA;
ALTER TABLE servers ADD COLUMN rotate_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN status_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE installations ADD COLUMN enrollment_key_issued_at BIGINT NOT NULL DEFAULT 0;
UPDATE installations SET enrollment_key_issued_at = created_at;
CREATE TABLE reenrollments (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id       TEXT NOT NULL REFERENCES servers (id),
    installation_id BIGINT NOT NULL REFERENCES installations (id),
    agent_version   TEXT NOT NULL DEFAULT '',
    remote_addr     TEXT NOT NULL DEFAULT '',
    requested_at    BIGINT NOT NULL,
    state           TEXT NOT NULL,
    decided_by      TEXT NOT NULL DEFAULT '',
    decided_at      BIGINT
);
CREATE INDEX reenrollments_installation ON reenrollments (installation_id, state);
