-- Vendor channels (Slack, Teams, PagerDuty, Pushover, HaloPSA): endpoint
-- replaces the vendor's service URL; signature is a webhook's signature
-- format. The vendor key lives in secret, sealed like a signing secret.
ALTER TABLE channels ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN signature TEXT NOT NULL DEFAULT '';
UPDATE channels SET signature = 'keepwatch' WHERE type = 'webhook';

-- The ticket a PSA channel opened for an incident, so that an
-- acknowledgement adds a note to it and a resolution closes it.
CREATE TABLE incident_tickets (
    channel_id  INTEGER NOT NULL REFERENCES channels (id),
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    ticket_id   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, incident_id)
);
