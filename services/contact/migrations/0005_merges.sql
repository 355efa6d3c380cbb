-- One row per merge: its idempotency key (AIP-155) and where its ContactsMerged event landed, so a
-- retried or repeated merge answers the same result, position included. A contact is merged at
-- most once, hence the key on the secondary.
CREATE TABLE contact_merges (
    workspace_id TEXT NOT NULL,
    secondary_contact_id TEXT NOT NULL,
    primary_contact_id TEXT NOT NULL,
    request_id TEXT,
    partition_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, secondary_contact_id)
);

CREATE UNIQUE INDEX contact_merges_by_request_id ON contact_merges (workspace_id, request_id)
    WHERE request_id IS NOT NULL;
