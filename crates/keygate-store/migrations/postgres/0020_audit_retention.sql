-- Audit retention: rows older than their kind's retention are pruned in small batches. The log
-- stays append-only for everything else: a DELETE passes only for a row older than a cutoff that
-- the pruning transaction itself wrote into audit_prune (and removes before it commits, so no
-- other transaction ever sees it). UPDATE is always refused.
CREATE TABLE audit_prune (before BIGINT NOT NULL);

CREATE OR REPLACE FUNCTION keygate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_prune WHERE OLD.at < before) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;

-- Pruning finds old rows of one kind (refused calls: by action) and of all kinds (by time).
CREATE INDEX audit_events_action_at ON audit_events (action, at);
CREATE INDEX audit_events_at ON audit_events (at);
