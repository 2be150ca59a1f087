-- Pushed invalidation: every statement that appends to the change feed notifies the channel
-- `keygate_changes` with the highest sequence number it appended. The notification is sent when
-- the transaction commits (never for one that rolls back), and carries no secret. Only writes that
-- can alter a verification append change rows; last-used times and usage counts never do.
CREATE FUNCTION keygate_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keygate_changes', (SELECT MAX(seq) FROM appended)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER changes_notify AFTER INSERT ON changes
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_notify_changes();
