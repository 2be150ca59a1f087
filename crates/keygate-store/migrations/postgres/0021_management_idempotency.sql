-- The management API's Idempotency-Key (issue 21): one row per key and Idempotency-Key, the
-- request's digest, and once answered its status, headers and body (a secret the answer showed
-- is never stored: the row holds the answer without it). `status` is NULL while the first
-- request is in progress. Rows expire after 24 h (pruned by the maintenance run); a key holds at
-- most a fixed number (the oldest are evicted). No foreign keys: rows are short-lived, and a
-- tenant's removal also deletes them.
CREATE TABLE management_idempotency (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    BIGINT NOT NULL,
    key_id       BIGINT NOT NULL,
    idem_key     TEXT   NOT NULL,
    request_hash BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    status       BIGINT,
    headers      TEXT   NOT NULL DEFAULT '[]',
    body         TEXT   NOT NULL DEFAULT '',
    withheld     TEXT   NOT NULL DEFAULT '',
    UNIQUE (key_id, idem_key)
);
CREATE INDEX management_idempotency_created ON management_idempotency (created_at);

-- When each audit row was written, by the database's clock (milliseconds), at the INSERT that
-- also takes its id. Concurrent transactions may commit out of id order; a poller serves only
-- rows written at least a settle time ago, so every smaller id has committed or never will
-- (see audit_search.rs). Added without a default first, so that existing rows (NULL: long
-- settled) are not rewritten.
ALTER TABLE audit_events ADD COLUMN written_at BIGINT;
ALTER TABLE audit_events ALTER COLUMN written_at SET DEFAULT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT;
