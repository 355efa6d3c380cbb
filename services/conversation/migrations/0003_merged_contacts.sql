-- Contacts this service has seen merged into another (from the contact event stream). An opening
-- checks it under the same per-contact lock the merge takes, so an open racing a merge either
-- sees the merge and is refused, or commits first and is closed by it.
CREATE TABLE merged_contacts (
    workspace_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    merged_into TEXT NOT NULL,
    PRIMARY KEY (workspace_id, contact_id)
);
