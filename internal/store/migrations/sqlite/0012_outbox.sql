-- The notifier marks each transition processed, in the transaction that
-- turns it into notifications, instead of following an id cursor: ids are
-- taken when a transaction inserts and become visible when it commits, so
-- a cursor skips a lower id committed after a higher one. Transitions the
-- cursor had passed are processed already.
ALTER TABLE incident_events ADD COLUMN processed_at INTEGER;
UPDATE incident_events SET processed_at = 0 WHERE id <= COALESCE((SELECT value FROM meta WHERE key = 'notify_cursor'), 0);
DELETE FROM meta WHERE key = 'notify_cursor';
CREATE INDEX incident_events_unprocessed ON incident_events (id) WHERE processed_at IS NULL;

-- Held: an opening deferred to the end of its installation's maintenance
-- window (ending the window early releases it at once). The pending index
-- serves the per-channel claims.
ALTER TABLE notifications ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX notifications_pending ON notifications (channel_id, not_before) WHERE state = 'pending';

-- One timer per incident and repeating rule: the k-th reminder is due at
-- sent_at + k × repeat, counted from the opening notification.
CREATE TABLE reminders (
    incident_id INTEGER NOT NULL,
    rule_id     INTEGER NOT NULL,
    opening_id  INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL,
    repeat_ms   INTEGER NOT NULL,
    k           INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    PRIMARY KEY (incident_id, rule_id)
);
CREATE INDEX reminders_due ON reminders (next_at);
