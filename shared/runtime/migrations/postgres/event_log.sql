-- The event log (transactional outbox), shared by every service that writes events.
-- event_log_heads holds each partition's last sequence; see shared/runtime/src/event_log.rs.
CREATE TABLE event_log_heads (
    partition_no BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE event_log (
    partition_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    PRIMARY KEY (partition_no, seq)
);
