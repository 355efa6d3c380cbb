-- Each workspace's report settings (ReportSettings); a missing row or column value is the
-- default. Reports read them when asked: the aggregates never depend on them.
CREATE TABLE report_settings (
    workspace_id TEXT NOT NULL,
    recontact_window_hours BIGINT,
    PRIMARY KEY (workspace_id)
);

-- Each workspace's business hours, every version kept: a conversation is measured by the
-- schedule in effect when it was opened (the latest effective_from at or before its opening,
-- microseconds), also when the stream is applied again. schedule: the BusinessHours message's
-- bytes; NULL from when the workspace removed its business hours.
CREATE TABLE business_hours_versions (
    workspace_id TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    schedule BYTEA,
    PRIMARY KEY (workspace_id, effective_from)
);

-- Each workspace's service level targets, every version kept, applied like business hours (by
-- the conversation's opening time). targets: the SlaTargets message's bytes; NULL from when the
-- workspace removed its targets.
CREATE TABLE sla_target_versions (
    workspace_id TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    targets BYTEA,
    PRIMARY KEY (workspace_id, effective_from)
);
