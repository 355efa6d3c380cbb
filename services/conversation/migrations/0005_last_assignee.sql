-- The last user a conversation was assigned to, kept when it is unassigned: the export's
-- "Last Assignee" beside the assignee at close. Rows written before it was kept take the
-- assignee they have, the best that is known.
ALTER TABLE conversations ADD COLUMN last_assignee_user_id TEXT;

UPDATE conversations SET last_assignee_user_id = assignee_user_id;
