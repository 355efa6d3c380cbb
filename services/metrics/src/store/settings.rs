//! The workspaces' report settings.

use charla_runtime::ApiError;
use sqlx::Row;

use super::MetricsStore;
use crate::domain::{RecontactWindow, ReportSettings};

fn settings_of(row: Option<sqlx::any::AnyRow>) -> Result<ReportSettings, ApiError> {
    let mut settings = ReportSettings::default();
    let Some(row) = row else {
        return Ok(settings);
    };
    if let Some(hours) = row.try_get::<Option<i64>, _>("recontact_window_hours")? {
        let seconds = u64::try_from(hours).unwrap_or_default() * 3600;
        settings.recontact_window =
            RecontactWindow::new(std::time::Duration::from_secs(seconds))
                .map_err(|e| ApiError::Internal(format!("stored re-contact window: {e}")))?;
    }
    Ok(settings)
}

impl MetricsStore {
    /// The report settings of `workspace` (the defaults when never changed).
    pub async fn report_settings(&self, workspace: &str) -> Result<ReportSettings, ApiError> {
        let row = sqlx::query(
            "SELECT recontact_window_hours FROM report_settings WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .fetch_optional(self.db.pool())
        .await?;
        settings_of(row)
    }

    /// Changes the report settings of `workspace` to what `update` makes of the current ones, in
    /// one transaction (two admins' updates of different fields both hold).
    pub async fn update_report_settings(
        &self,
        workspace: &str,
        update: impl FnOnce(&ReportSettings) -> Result<ReportSettings, ApiError>,
    ) -> Result<ReportSettings, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        // Claims the row first, so a concurrent update waits for this one to commit.
        sqlx::query(
            "INSERT INTO report_settings (workspace_id) VALUES ($1)
             ON CONFLICT (workspace_id) DO UPDATE SET workspace_id = excluded.workspace_id",
        )
        .bind(workspace.to_owned())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT recontact_window_hours FROM report_settings WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let next = update(&settings_of(row)?)?;
        sqlx::query(
            "UPDATE report_settings SET recontact_window_hours = $2 WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .bind(i64::from(next.recontact_window.hours()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }
}
