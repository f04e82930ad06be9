-- Heartbeats spent on SQLite, appended before their answer and folded into
-- the servers' rows later, in id order (internal/store/journal.go). A row
-- belongs to one enrollment of its server (enrolled_at): enrolling again
-- starts the sequence over and leaves the old rows without effect.
CREATE TABLE beat_journal (
    server_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    seen        INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    enrolled_at INTEGER NOT NULL
);
