-- What each tenant's records take (issue: an insider's writes must not fill the disk), in units of
-- 512 per record plus the characters of its custom properties; one row per tenant and shard
-- (the writing key's id modulo 16), changed in the transaction that writes the record.
-- Released migrations are never edited.
CREATE TABLE record_storage (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    shard     BIGINT NOT NULL,
    used      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, shard)
);

-- What the records written before this migration take, on shard 0.
INSERT INTO record_storage (tenant_id, shard, used)
SELECT tenant_id, 0, SUM(units) FROM (
    SELECT tenant_id, 512 + LENGTH(properties) AS units FROM companies
    UNION ALL SELECT tenant_id, 512 + LENGTH(properties) FROM persons
    UNION ALL SELECT tenant_id, 512 + LENGTH(properties) FROM jobs
    UNION ALL SELECT tenant_id, 512 + LENGTH(properties) FROM tasks
    UNION ALL SELECT tenant_id, 512 + LENGTH(properties) FROM documents
    UNION ALL SELECT tenant_id, 512 FROM time_entries
) AS existing
GROUP BY tenant_id;
