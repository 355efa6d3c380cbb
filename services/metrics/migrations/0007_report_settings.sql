-- Each workspace's report settings (ReportSettings); a missing row or column value is the
-- default. Reports read them when asked: the aggregates never depend on them.
CREATE TABLE report_settings (
    workspace_id TEXT NOT NULL,
    recontact_window_hours BIGINT,
    PRIMARY KEY (workspace_id)
);
