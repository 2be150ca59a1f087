-- Audit retention: rows older than their kind's retention are pruned in small batches. The log
-- stays append-only for everything else: a DELETE passes only for a row older than a cutoff that
-- the pruning transaction itself wrote into audit_prune (and removes before it commits, so no
-- other connection ever sees it). UPDATE is always refused.
CREATE TABLE audit_prune (before INTEGER NOT NULL);

DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_prune WHERE OLD.at < before)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

-- Pruning finds old rows of one kind (refused calls: by action) and of all kinds (by time).
CREATE INDEX audit_events_action_at ON audit_events (action, at);
CREATE INDEX audit_events_at ON audit_events (at);
