-- Business records of the data API (SQLite). Amounts are integer minor units (cents).

CREATE TABLE companies (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id           INTEGER NOT NULL REFERENCES tenants(id),
    unit_id             INTEGER NOT NULL,
    owner_id            INTEGER NOT NULL REFERENCES users(id),
    name                TEXT    NOT NULL,
    registration_number TEXT,
    vat_id              TEXT,
    address             TEXT,
    is_client           BOOLEAN NOT NULL DEFAULT FALSE,
    is_supplier         BOOLEAN NOT NULL DEFAULT FALSE,
    is_disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    properties          TEXT    NOT NULL DEFAULT '{}',
    created_at          INTEGER NOT NULL
);
CREATE INDEX companies_scope ON companies (tenant_id, unit_id, id);

CREATE TABLE persons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    unit_id     INTEGER NOT NULL,
    owner_id    INTEGER NOT NULL REFERENCES users(id),
    first_name  TEXT    NOT NULL,
    last_name   TEXT    NOT NULL,
    email       TEXT,
    phone       TEXT,
    company_id  INTEGER REFERENCES companies(id),
    is_disabled BOOLEAN NOT NULL DEFAULT FALSE,
    properties  TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE INDEX persons_scope ON persons (tenant_id, unit_id, id);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id),
    unit_id      INTEGER NOT NULL,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    number       TEXT,
    name         TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'OPEN',
    company_id   INTEGER REFERENCES companies(id),
    start_date   TEXT,
    end_date     TEXT,
    budget_cents INTEGER,
    properties   TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_scope ON jobs (tenant_id, unit_id, id);

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      INTEGER NOT NULL REFERENCES tenants(id),
    unit_id        INTEGER NOT NULL,
    owner_id       INTEGER NOT NULL REFERENCES users(id),
    job_id         INTEGER REFERENCES jobs(id),
    name           TEXT    NOT NULL,
    assignee_id    INTEGER REFERENCES users(id),
    status         TEXT    NOT NULL DEFAULT 'OPEN',
    due_date       TEXT,
    estimate_hours REAL,
    properties     TEXT    NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL
);
CREATE INDEX tasks_scope ON tasks (tenant_id, unit_id, id);

CREATE TABLE documents (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id          INTEGER NOT NULL REFERENCES tenants(id),
    unit_id            INTEGER NOT NULL,
    owner_id           INTEGER NOT NULL REFERENCES users(id),
    type               TEXT    NOT NULL,
    number             TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'DRAFT',
    company_id         INTEGER REFERENCES companies(id),
    person_id          INTEGER REFERENCES persons(id),
    issue_date         TEXT,
    due_date           TEXT,
    currency           TEXT    NOT NULL DEFAULT 'EUR',
    amount_net_cents   INTEGER NOT NULL DEFAULT 0,
    amount_vat_cents   INTEGER NOT NULL DEFAULT 0,
    amount_total_cents INTEGER NOT NULL DEFAULT 0,
    tags               TEXT    NOT NULL DEFAULT '[]',
    properties         TEXT    NOT NULL DEFAULT '{}',
    created_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, number)
);
CREATE INDEX documents_scope ON documents (tenant_id, unit_id, id);

CREATE TABLE time_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
    unit_id    INTEGER NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    job_id     INTEGER REFERENCES jobs(id),
    task_id    INTEGER REFERENCES tasks(id),
    date       TEXT    NOT NULL,
    hours      REAL    NOT NULL,
    note       TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX time_entries_scope ON time_entries (tenant_id, unit_id, id);

-- A retried POST with the same Idempotency-Key gets the first answer back.
CREATE TABLE idempotency_keys (
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id),
    key_id       INTEGER NOT NULL REFERENCES api_keys(id),
    idem_key     TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_id, idem_key)
);
