-- An e-mail address is unique within an integrator, not across them: a
-- technician who works for two integrators has an account in each.
-- SQLite cannot drop a column's UNIQUE, so the table is rebuilt. Sessions
-- and assignments point at users by id; the ids are kept, and deferring
-- foreign keys to the commit lets the rows come back before they are
-- checked.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE users_copy AS SELECT id, integrator_id, email, password_hash, role, created_at FROM users;
DROP TABLE users;
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (integrator_id, email)
);
INSERT INTO users (id, integrator_id, email, password_hash, role, created_at)
    SELECT id, integrator_id, email, password_hash, role, created_at FROM users_copy;
DROP TABLE users_copy;
CREATE INDEX users_integrator ON users (integrator_id);
CREATE INDEX users_email ON users (email);
