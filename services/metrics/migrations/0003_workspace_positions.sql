-- Each workspace's latest applied event per partition: what a report of that workspace says it
-- reflects. The partition cursor alone would tell a workspace how many events the others wrote.
CREATE TABLE workspace_positions (
    workspace_id TEXT NOT NULL,
    partition_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, partition_no)
);
