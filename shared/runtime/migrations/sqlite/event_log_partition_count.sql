-- The event log's partition count, recorded by the first replica that starts on this database
-- (shared/runtime/src/event_log.rs). Every later replica uses it, and one configured with another
-- count refuses to start: replicas that disagree would hash a workspace to different partitions.
-- One row at most.
CREATE TABLE event_log_partition_count (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    partitions BIGINT NOT NULL
);
