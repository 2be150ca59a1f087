-- keygate foundation schema (PostgreSQL). Released migrations are never edited.
-- Times are Unix milliseconds (BIGINT); lists are JSON text.

CREATE TABLE tenants (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug                  TEXT    NOT NULL UNIQUE,
    name                  TEXT    NOT NULL,
    public_api            BOOLEAN NOT NULL DEFAULT FALSE,
    ip_whitelist          TEXT    NOT NULL,
    max_key_lifetime_days BIGINT,
    rate_limit_per_minute BIGINT NOT NULL DEFAULT 600,
    created_at            BIGINT NOT NULL
);

CREATE TABLE units (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    unit_id   BIGINT NOT NULL,
    name      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, unit_id)
);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     BIGINT NOT NULL REFERENCES tenants(id),
    email         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    category      TEXT    NOT NULL CHECK (category IN ('personal', 'programmatic')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,
    units         TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE user_groups (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  BIGINT NOT NULL REFERENCES tenants(id),
    name       TEXT    NOT NULL,
    system     TEXT,
    grants     TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (tenant_id, name)
);

CREATE TABLE memberships (
    user_id  BIGINT NOT NULL REFERENCES users(id),
    group_id BIGINT NOT NULL REFERENCES user_groups(id),
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE api_keys (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             BIGINT NOT NULL REFERENCES tenants(id),
    user_id               BIGINT NOT NULL REFERENCES users(id),
    created_by            BIGINT REFERENCES users(id),
    purpose               TEXT    NOT NULL,
    digest                BYTEA    NOT NULL,
    display               TEXT    NOT NULL,
    ip_ranges             TEXT    NOT NULL,
    scopes                TEXT,
    units                 TEXT,
    expires_at            BIGINT,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    revoked_at            BIGINT,
    created_at            BIGINT NOT NULL,
    last_used_at          BIGINT,
    last_used_ip          TEXT,
    rolled_from           BIGINT REFERENCES api_keys(id),
    rate_limit_per_minute BIGINT
);
CREATE UNIQUE INDEX api_keys_digest ON api_keys (digest);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   BIGINT REFERENCES tenants(id),
    at          BIGINT NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_id    BIGINT,
    actor_label TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    details     TEXT    NOT NULL DEFAULT '',
    source_ip   TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);


-- The change feed: every write that can alter a verification appends a row here, so every
-- keygate process on this database can drop exactly the cache entries that went stale.
CREATE TABLE changes (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    kind      TEXT    NOT NULL,
    entity_id BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);

CREATE FUNCTION keygate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION keygate_audit_append_only();
