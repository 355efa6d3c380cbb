-- Contacts, their channel identities and tags. Every key leads with workspace_id so the tables can
-- be distributed by workspace. Ids are UUID text; instants are microseconds since the epoch.
CREATE TABLE contacts (
    workspace_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    language TEXT NOT NULL,
    custom_fields TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    merged_into TEXT,
    request_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, contact_id)
);

CREATE UNIQUE INDEX contacts_by_request_id ON contacts (workspace_id, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX contacts_by_email ON contacts (workspace_id, email);
CREATE INDEX contacts_by_phone ON contacts (workspace_id, phone);

-- One row per identity: the primary key makes an identity unique within its workspace, which is
-- what lets concurrent ResolveContact calls agree on one contact.
CREATE TABLE contact_identities (
    workspace_id TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, channel_type, channel_id, external_id)
);

CREATE INDEX contact_identities_by_contact ON contact_identities (workspace_id, contact_id);

-- Tags again, one row each, for filtering; contacts.tags keeps their order.
CREATE TABLE contact_tags (
    workspace_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, tag, contact_id)
);
