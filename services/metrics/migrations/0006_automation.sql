-- Closed statistics gain bot and AI containment (automated, contained and handed-off counts, time
-- to handoff), from ConversationClosed's first automated message. Rows written before lack them:
-- forget every aggregate and the cursor, so the consumer applies the conversation stream again
-- from its start.
DELETE FROM conversation_facts;
DELETE FROM opened_rollup;
DELETE FROM closed_rollup;
DELETE FROM dimension_rollup;
DELETE FROM live_counts;
DELETE FROM workspace_positions;
DELETE FROM consumer_cursors WHERE consumer = 'conversation-events';
