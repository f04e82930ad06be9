-- An e-mail address is unique within an integrator, not across them: a
-- technician who works for two integrators has an account in each.
ALTER TABLE users DROP CONSTRAINT users_email_key;
ALTER TABLE users ADD CONSTRAINT users_integrator_email_key UNIQUE (integrator_id, email);
CREATE INDEX users_email ON users (email);
