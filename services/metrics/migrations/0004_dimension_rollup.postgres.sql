-- Rollups per single dimension at coarse grains, so a report reads O(buckets x values) rows
-- whatever the number of conversations (the 15-minute rollups hold every combination of
-- dimensions, about one row per conversation at scale).
--
-- grain: 60 (an hour) or 1440 (a UTC day), in minutes; bucket_start is its edge. dimension: ''
-- for every conversation (value ''), else a dimension's column name and the value (conversations
-- still open are in no row of closed_by and category, as in reports). Opened counts are by
-- opening time and the conversation's current dimensions; closed counts and stats by closing time.
CREATE TABLE dimension_rollup (
    workspace_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    grain BIGINT NOT NULL,
    bucket_start BIGINT NOT NULL,
    value TEXT NOT NULL,
    opened_count BIGINT NOT NULL,
    closed_count BIGINT NOT NULL,
    stats BYTEA,
    PRIMARY KEY (workspace_id, dimension, grain, bucket_start, value)
);

-- Closed statistics now carry a sketch of their contacts (unique contacts closed without reading
-- conversations), and the new rollups start empty: forget every aggregate and the cursor, so the
-- consumer applies the conversation stream again from its start and every row is complete.
DELETE FROM conversation_facts;
DELETE FROM opened_rollup;
DELETE FROM closed_rollup;
DELETE FROM live_counts;
DELETE FROM workspace_positions;
DELETE FROM consumer_cursors WHERE consumer = 'conversation-events';
