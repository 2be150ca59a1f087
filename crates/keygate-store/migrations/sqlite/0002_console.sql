-- The console (SQLite): sessions, log-in throttling, per-key per-day usage counters.
-- Released migrations are never edited. Times are Unix milliseconds.

-- A console session. Only the SHA-256 digest of the cookie's token is stored, so a copy of the
-- database does not let anyone log in; any keygate node on this database can read it.
CREATE TABLE console_sessions (
    digest       BLOB    PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    csrf_token   TEXT    NOT NULL,
    form_nonce   TEXT,
    flash        TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ip           TEXT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Failed log-ins per subject (`account:…` or `ip:…`) within the current window.
CREATE TABLE login_throttle (
    subject      TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER
);

-- Calls per key, UTC day (days since 1970-01-01) and outcome (`accepted` or a refusal code).
CREATE TABLE key_usage_daily (
    key_id  INTEGER NOT NULL REFERENCES api_keys(id),
    day     INTEGER NOT NULL,
    outcome TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (key_id, day, outcome)
);
