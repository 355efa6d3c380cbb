-- Closed statistics gain bot and AI containment (automated, contained and handed-off counts, time
-- to handoff), from ConversationClosed's first automated message, and conversations a new
-- dimension: automated_by, the bot, AI agent or workflow that made a closed conversation
-- automated ('' for none). They also count re-contacts: each closed conversation keeps the gap
-- to its contact's next opening (recontact_gap, microseconds, when within 7 days), found among
-- the contact's conversations. Rows written before lack all of it: the rollups of every combination are
-- made again with the new column in their keys, every aggregate and the cursor are forgotten,
-- and the consumer applies the conversation stream again from its start.
DROP TABLE opened_rollup;
DROP TABLE closed_rollup;

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
    automated_by TEXT NOT NULL,
    opened_count BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, bucket_start, assignee, team, channel_type, channel_id, opened_by,
                 closed_by, category, automated_by)
);

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
    automated_by TEXT NOT NULL,
    closed_count BIGINT NOT NULL,
    stats BYTEA NOT NULL,
    recontact BYTEA,
    PRIMARY KEY (workspace_id, bucket_start, assignee, team, channel_type, channel_id, opened_by,
                 closed_by, category, automated_by)
);

-- recontact: re-contacted conversations by the hour bin of the gap from their close to their
-- contact's next opening (RecontactGaps), apart from stats so that a re-contact, which lands in
-- an older bucket, rewrites a few bytes instead of every sketch.
ALTER TABLE dimension_rollup ADD COLUMN recontact BYTEA;

ALTER TABLE conversation_facts ADD COLUMN automated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE conversation_facts ADD COLUMN recontact_gap BIGINT;
-- When an open conversation got its first response: the dashboard's first response targets.
ALTER TABLE conversation_facts ADD COLUMN first_response_at BIGINT;
CREATE INDEX conversation_facts_by_contact ON conversation_facts (workspace_id, contact_id);

DELETE FROM conversation_facts;
DELETE FROM dimension_rollup;
DELETE FROM live_counts;
DELETE FROM workspace_positions;
DELETE FROM consumer_cursors WHERE consumer = 'conversation-events';
