-- Each event's place among its own workspace's events: 1, 2, 3... per workspace, with no gaps.
-- A stream scoped to one workspace reads and reports these, so it reveals nothing of the other
-- workspaces that share its partition. The append sets it (shared/runtime/src/event_log.rs);
-- events written before this migration are numbered here, in the order of their partition.
ALTER TABLE event_log ADD COLUMN workspace_seq BIGINT;

UPDATE event_log SET workspace_seq = numbered.n
FROM (
    SELECT partition_no, seq,
           ROW_NUMBER() OVER (PARTITION BY workspace_id ORDER BY partition_no, seq) AS n
    FROM event_log
) AS numbered
WHERE event_log.partition_no = numbered.partition_no AND event_log.seq = numbered.seq;

CREATE UNIQUE INDEX event_log_by_workspace ON event_log (workspace_id, workspace_seq);

-- During a rolling update, replicas of the previous release still append without a workspace
-- sequence. Number their events here, exactly as the append does: they too hold the partition's
-- head row lock, so the next number is taken after the previous event has committed.
CREATE FUNCTION event_log_number_in_workspace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.workspace_seq := COALESCE(
        (SELECT max(workspace_seq) FROM event_log WHERE workspace_id = NEW.workspace_id), 0) + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER event_log_number_in_workspace BEFORE INSERT ON event_log
    FOR EACH ROW WHEN (NEW.workspace_seq IS NULL)
    EXECUTE FUNCTION event_log_number_in_workspace();
