-- dimension_rollup gains grains of three days (4320) and nine days (12960), each from the UTC
-- midnight of a multiple of its length since 1970-01-01, so the groups of a 30-day report read
-- at most 8 rows per value instead of 30. Rows written before lack them: forget every aggregate and
-- the cursor, so the consumer applies the conversation stream again from its start.
DELETE FROM conversation_facts;
DELETE FROM opened_rollup;
DELETE FROM closed_rollup;
DELETE FROM dimension_rollup;
DELETE FROM live_counts;
DELETE FROM workspace_positions;
DELETE FROM consumer_cursors WHERE consumer = 'conversation-events';
