-- Accounts worth trusting: second factors, recovery codes, password
-- resets, sign-ins in progress and the integrators' own identity
-- providers. Times are Unix milliseconds (INTEGER). Rows that belong to a
-- user go with the user.

-- An owner may require a second factor of everyone in the integrator.
ALTER TABLE integrators ADD COLUMN require_second_factor INTEGER NOT NULL DEFAULT 0;
-- How a session signed in (password, password+totp, passkey, oidc, …).
ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT '';
-- When an API token last authenticated a request (written at most once a
-- minute per node).
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

-- Second factors: one TOTP seed (sealed) and any number of passkeys.
CREATE TABLE user_factors (
    id            INTEGER PRIMARY KEY,
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    secret        BLOB,                      -- totp: the seed, sealed
    last_step     INTEGER NOT NULL DEFAULT 0, -- totp: last time step accepted
    credential_id BLOB UNIQUE,               -- passkey
    user_handle   BLOB,                      -- passkey: WebAuthn user handle
    credential    TEXT NOT NULL DEFAULT '',  -- passkey: the credential, JSON
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX user_factors_user ON user_factors (user_id);
CREATE INDEX user_factors_handle ON user_factors (user_handle);
CREATE UNIQUE INDEX user_factors_one_totp ON user_factors (user_id) WHERE kind = 'totp';

-- Single-use recovery codes; only their SHA-256 (80-bit random codes).
CREATE TABLE recovery_codes (
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash     BLOB NOT NULL,
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    created_at    INTEGER NOT NULL,
    used_at       INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Password reset links; only the SHA-256 of their token.
CREATE TABLE password_resets (
    token_hash    BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    remote_addr   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at);

-- Sign-ins in progress between two requests (a second factor to prove, a
-- WebAuthn ceremony, a round trip to an identity provider), found by the
-- SHA-256 of a value the browser holds.
CREATE TABLE auth_flows (
    id_hash       BLOB PRIMARY KEY,
    kind          TEXT NOT NULL,
    user_id       INTEGER REFERENCES users (id) ON DELETE CASCADE,
    integrator_id INTEGER,
    data          TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX auth_flows_expires ON auth_flows (expires_at);

-- An integrator's OpenID Connect provider. The client secret is sealed.
CREATE TABLE oidc_providers (
    integrator_id INTEGER PRIMARY KEY REFERENCES integrators (id),
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret BLOB NOT NULL,
    domains       TEXT NOT NULL DEFAULT '',
    role_claim    TEXT NOT NULL DEFAULT '',
    role_map      TEXT NOT NULL DEFAULT '',
    default_role  TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL DEFAULT ''
);

-- Which user an identity provider's subject is: matched once by verified
-- e-mail, then by subject, so a reassigned address cannot take over.
CREATE TABLE oidc_identities (
    integrator_id INTEGER NOT NULL REFERENCES integrators (id),
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (integrator_id, issuer, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities (user_id);
