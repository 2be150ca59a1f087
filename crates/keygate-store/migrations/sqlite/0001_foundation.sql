-- keygate foundation schema (SQLite). Released migrations are never edited.
-- Times are Unix milliseconds (INTEGER); lists are JSON text.

CREATE TABLE tenants (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    slug                  TEXT    NOT NULL UNIQUE,
    name                  TEXT    NOT NULL,
    public_api            BOOLEAN NOT NULL DEFAULT FALSE,
    ip_whitelist          TEXT    NOT NULL,
    max_key_lifetime_days INTEGER,
    rate_limit_per_minute INTEGER NOT NULL DEFAULT 600,
    created_at            INTEGER NOT NULL
);

CREATE TABLE units (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    unit_id   INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, unit_id)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    email         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    category      TEXT    NOT NULL CHECK (category IN ('personal', 'programmatic')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,
    units         TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE user_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
    name       TEXT    NOT NULL,
    system     TEXT,
    grants     TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (tenant_id, name)
);

CREATE TABLE memberships (
    user_id  INTEGER NOT NULL REFERENCES users(id),
    group_id INTEGER NOT NULL REFERENCES user_groups(id),
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE api_keys (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id             INTEGER NOT NULL REFERENCES tenants(id),
    user_id               INTEGER NOT NULL REFERENCES users(id),
    created_by            INTEGER REFERENCES users(id),
    purpose               TEXT    NOT NULL,
    digest                BLOB    NOT NULL,
    display               TEXT    NOT NULL,
    ip_ranges             TEXT    NOT NULL,
    scopes                TEXT,
    units                 TEXT,
    expires_at            INTEGER,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    revoked_at            INTEGER,
    created_at            INTEGER NOT NULL,
    last_used_at          INTEGER,
    last_used_ip          TEXT,
    rolled_from           INTEGER REFERENCES api_keys(id),
    rate_limit_per_minute INTEGER
);
CREATE UNIQUE INDEX api_keys_digest ON api_keys (digest);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER REFERENCES tenants(id),
    at          INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_id    INTEGER,
    actor_label TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    details     TEXT    NOT NULL DEFAULT '',
    source_ip   TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

-- The change feed: every write that can alter a verification appends a row here, so every
-- keygate process on this database can drop exactly the cache entries that went stale.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    entity_id INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);
