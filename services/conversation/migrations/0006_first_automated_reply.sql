-- The first message a bot, an AI agent or a workflow wrote in a conversation (when, which kind,
-- which one): ConversationClosed carries it so the metrics can count contained conversations and
-- handoffs. Conversations written before it was kept have none.
ALTER TABLE conversations ADD COLUMN first_automated_at BIGINT;
ALTER TABLE conversations ADD COLUMN first_automated_author_kind TEXT;
ALTER TABLE conversations ADD COLUMN first_automated_author_id TEXT;
-- When each response's wait began, beside response_times (a JSON list of microseconds): the
-- metrics measure response times in business time from it. NULL for conversations written before.
ALTER TABLE conversations ADD COLUMN response_started_at TEXT;
