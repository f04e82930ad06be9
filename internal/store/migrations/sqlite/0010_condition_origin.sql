-- A condition is reported by the server's agent (its status reports carry
-- the full set and replace it) or decided by keepwatch (drive forecasts,
-- retention, floods), which an agent's report never clears.
ALTER TABLE conditions ADD COLUMN origin TEXT NOT NULL DEFAULT 'agent';
