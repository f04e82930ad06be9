-- An incident belongs to the integrator that held the installation when it
-- happened: a later holder of the SLC does not see earlier holders' notes.
ALTER TABLE incidents ADD COLUMN integrator_id BIGINT;
UPDATE incidents SET integrator_id = (SELECT integrator_id FROM installations WHERE installations.id = incidents.installation_id);
CREATE INDEX incidents_integrator ON incidents (integrator_id, state);
