-- The console (PostgreSQL): sessions, log-in throttling, per-key per-day usage counters.
-- Released migrations are never edited. Times are Unix milliseconds.

-- A console session. Only the SHA-256 digest of the cookie's token is stored, so a copy of the
-- database does not let anyone log in; any keygate node on this database can read it.
CREATE TABLE console_sessions (
    digest       BYTEA   PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants(id),
    user_id      BIGINT  NOT NULL REFERENCES users(id),
    csrf_token   TEXT    NOT NULL,
    form_nonce   TEXT,
    flash        TEXT,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    ip           TEXT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Failed log-ins per subject (`account:…` or `ip:…`) within the current window.
CREATE TABLE login_throttle (
    subject      TEXT    PRIMARY KEY,
    failures     BIGINT  NOT NULL,
    window_start BIGINT  NOT NULL,
    locked_until BIGINT 
);

-- Calls per key, UTC day (days since 1970-01-01) and outcome (`accepted` or a refusal code).
CREATE TABLE key_usage_daily (
    key_id  BIGINT  NOT NULL REFERENCES api_keys(id),
    day     BIGINT  NOT NULL,
    outcome TEXT    NOT NULL,
    count   BIGINT  NOT NULL,
    PRIMARY KEY (key_id, day, outcome)
);
