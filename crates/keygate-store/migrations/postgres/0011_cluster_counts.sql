-- Cluster-wide limits: every node appends, every 100 ms, how many calls each key accepted and how
-- many failed verifications each source (an IPv4 address, an IPv6 /64) made since its last report;
-- every node reads the others' rows of the last seconds and charges them to its own buckets.
-- Rows older than two minutes are pruned. PostgreSQL only: on SQLite one process serves the file.
CREATE TABLE cluster_counts (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    node    TEXT   NOT NULL,
    kind    TEXT   NOT NULL CHECK (kind IN ('key', 'failure')),
    subject BYTEA  NOT NULL,
    n       BIGINT NOT NULL
);
CREATE INDEX cluster_counts_at ON cluster_counts (at);
