-- Aggregates built from the conversation event stream. The dimension columns hold charla's
-- stored names ('' for none: no assignee yet, not closed yet); instants are microseconds since
-- the epoch; bucket_start is a 15-minute UTC bucket edge.

-- One row per conversation: its current dimensions (so a reassignment can move its count), and,
-- once closed, the close event itself for exports.
CREATE TABLE conversation_facts (
    workspace_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    assignee TEXT NOT NULL,
    team TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    category TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    imported BIGINT NOT NULL,
    close_event BLOB,
    PRIMARY KEY (workspace_id, conversation_id)
);
CREATE INDEX conversation_facts_by_close ON conversation_facts (workspace_id, closed_at);

-- Conversations opened in each bucket, by their current dimensions.
CREATE TABLE opened_rollup (
    workspace_id TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    assignee TEXT NOT NULL,
    team TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    category TEXT NOT NULL,
    opened_count BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, bucket_start, assignee, team, channel_type, channel_id, opened_by,
                 closed_by, category)
);

-- Conversations closed in each bucket, by their dimensions at close: counts and distributions.
CREATE TABLE closed_rollup (
    workspace_id TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    assignee TEXT NOT NULL,
    team TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    category TEXT NOT NULL,
    closed_count BIGINT NOT NULL,
    stats BLOB NOT NULL,
    PRIMARY KEY (workspace_id, bucket_start, assignee, team, channel_type, channel_id, opened_by,
                 closed_by, category)
);

-- What the dashboard shows "now".
CREATE TABLE live_counts (
    workspace_id TEXT NOT NULL,
    open_count BIGINT NOT NULL,
    unassigned_count BIGINT NOT NULL,
    PRIMARY KEY (workspace_id)
);

-- How far the conversation event stream has been applied, per partition.
CREATE TABLE consumer_cursors (
    consumer TEXT NOT NULL,
    partition_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (consumer, partition_no)
);
