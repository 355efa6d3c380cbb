-- Which events are about which conversation, for ListConversationEvents: each event's workspace
-- sequence (event_log.workspace_seq), written in the event's own transaction. Events written
-- before this table existed are indexed once at start-up; the marker row says that is done.
CREATE TABLE conversation_events (
    workspace_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    workspace_seq BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, conversation_id, workspace_seq)
);

CREATE TABLE conversation_events_backfilled (
    done BIGINT NOT NULL
);
