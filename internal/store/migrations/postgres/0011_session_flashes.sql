-- What the dashboard shows once after a form, keyed by the session that
-- posted it: a new API token, a webhook's signing secret, recovery codes.
-- The page redirects after the form (so a reload does not post it again)
-- and reads its flash here, from whichever node answers. Values are
-- sealed; a flash lives minutes and is deleted when read.
CREATE TABLE session_flashes (
    session_hash BYTEA NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (session_hash, name)
);
CREATE INDEX session_flashes_expires ON session_flashes (expires_at);
