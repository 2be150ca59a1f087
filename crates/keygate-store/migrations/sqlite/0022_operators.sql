-- The operator plane (issue 21, SQLite). Released migrations are never edited.
-- Operator credentials: only the SHA-256 digest of the secret is stored; a revoked credential's
-- row is deleted (the audit log keeps its history). At most 100 exist (checked on issue).
CREATE TABLE operators (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    digest       BLOB    NOT NULL UNIQUE,
    display      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

-- A tenant's pending removal: the digest of its one-time confirmation and when it expires. One
-- per tenant (asking again replaces it); at most 100 pending at once (checked on insert).
CREATE TABLE tenant_removals (
    tenant_id   INTEGER PRIMARY KEY REFERENCES tenants(id),
    digest      BLOB    NOT NULL,
    operator_id INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
