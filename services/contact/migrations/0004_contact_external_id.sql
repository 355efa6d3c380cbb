-- The id an imported contact had in the system it came from (ImportContacts' `external_id`): a
-- repeated or resumed import finds the contact by it instead of creating another, and the unique
-- index settles concurrent imports of the same row. Additive: NULL for every other contact, and
-- older replicas never write the column.
ALTER TABLE contacts ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX contacts_by_external_id ON contacts (workspace_id, external_id)
    WHERE external_id IS NOT NULL;
