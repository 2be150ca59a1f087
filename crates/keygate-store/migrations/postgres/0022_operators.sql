-- The operator plane (issue 21, PostgreSQL). Released migrations are never edited.
-- Operator credentials: only the SHA-256 digest of the secret is stored; a revoked credential's
-- row is deleted (the audit log keeps its history). At most 100 exist (checked on issue).
CREATE TABLE operators (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT   NOT NULL,
    digest       BYTEA  NOT NULL UNIQUE,
    display      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

-- A tenant's pending removal: the digest of its one-time confirmation and when it expires. One
-- per tenant (asking again replaces it); at most 100 pending at once (checked on insert).
CREATE TABLE tenant_removals (
    tenant_id   BIGINT PRIMARY KEY REFERENCES tenants(id),
    digest      BYTEA  NOT NULL,
    operator_id BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
