-- Conversations, message metadata, workspace settings, idempotency keys and consumer cursors.
-- Ids are UUID text, instants microseconds since the epoch, durations microseconds.
CREATE TABLE conversations (
    workspace_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_by_id TEXT,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by TEXT,
    closed_by_id TEXT,
    closing_category TEXT,
    closing_summary TEXT,
    assignee_user_id TEXT,
    team_id TEXT,
    first_assignee_user_id TEXT,
    first_assigned_at BIGINT,
    last_assigned_at BIGINT,
    assignment_count BIGINT NOT NULL,
    first_response_at BIGINT,
    first_response_user_id TEXT,
    last_message_at BIGINT,
    last_inbound_at BIGINT,
    last_outbound_at BIGINT,
    awaiting_reply_since BIGINT,
    response_times TEXT NOT NULL,
    auto_close_at BIGINT,
    inbound_count BIGINT NOT NULL,
    outbound_count BIGINT NOT NULL,
    user_outbound_count BIGINT NOT NULL,
    response_count BIGINT NOT NULL,
    external_id TEXT,
    imported BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, conversation_id)
);

-- The one-open rule, enforced by the database for every replica at once.
CREATE UNIQUE INDEX conversations_one_open_per_contact ON conversations (workspace_id, contact_id)
    WHERE status = 'open';
CREATE INDEX conversations_by_contact ON conversations (workspace_id, contact_id, conversation_id);
CREATE UNIQUE INDEX conversations_by_external_id ON conversations (workspace_id, external_id)
    WHERE external_id IS NOT NULL;
-- The auto-close scheduler scans due deadlines across workspaces (on a distributed PostgreSQL each
-- shard runs the scan for its own workspaces), so this index alone leads with the deadline.
CREATE INDEX conversations_auto_close_due ON conversations (auto_close_at)
    WHERE auto_close_at IS NOT NULL;

-- Message metadata, unique by the channel's message id within a workspace: adapters retry.
CREATE TABLE messages (
    workspace_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id TEXT,
    contact_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id TEXT,
    sent_at BIGINT,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);

CREATE TABLE workspace_settings (
    workspace_id TEXT NOT NULL,
    closing_note_policy TEXT NOT NULL,
    closing_categories TEXT NOT NULL,
    auto_close_after_micros BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id)
);

-- Idempotency keys (AIP-155) of open, close and assign calls: a retry returns the conversation.
CREATE TABLE request_ids (
    workspace_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, request_id)
);

-- How far this service has applied another service's event stream, per partition.
CREATE TABLE consumer_cursors (
    consumer TEXT NOT NULL,
    partition_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (consumer, partition_no)
);
