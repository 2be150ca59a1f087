-- The management API's Idempotency-Key (issue 21): one row per key and Idempotency-Key, the
-- request's digest, and once answered its status, headers and body (a secret the answer showed
-- is never stored: the row holds the answer without it). `status` is NULL while the first
-- request is in progress. Rows expire after 24 h (pruned by the maintenance run); a key holds at
-- most a fixed number (the oldest are evicted). No foreign keys: rows are short-lived, and a
-- tenant's removal also deletes them.
CREATE TABLE management_idempotency (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    INTEGER NOT NULL,
    key_id       INTEGER NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    status       INTEGER,
    headers      TEXT    NOT NULL DEFAULT '[]',
    body         TEXT    NOT NULL DEFAULT '',
    withheld     TEXT    NOT NULL DEFAULT '',
    UNIQUE (key_id, idem_key)
);
CREATE INDEX management_idempotency_created ON management_idempotency (created_at);

-- When each audit row was written, by the database's clock. SQLite has one writer at a time, so
-- its ids are already in commit order and the column stays NULL here; on PostgreSQL it lets a
-- poller wait out transactions that took an id earlier but commit later (see audit_search.rs).
ALTER TABLE audit_events ADD COLUMN written_at INTEGER;
