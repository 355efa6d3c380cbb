//! Workspace settings: read inside lifecycle transactions, changed by the settings RPC.

use std::time::{Duration, SystemTime};

use charla_runtime::ApiError;
use charla_runtime::clock::{from_micros, to_micros};
use charla_runtime::workspace::WorkspaceId;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::ConversationStore;
use crate::domain::{AutoClose, ClosingNotePolicy, WorkspaceSettings};

/// The settings of the workspace bound as `$1`, as select-list items (scalar subqueries, each
/// NULL when the workspace never changed its settings) that any statement binding the workspace
/// as `$1` can add to its own: reading them costs no round trip of its own.
pub(super) const COLUMNS_OF_WORKSPACE_1: &str = "\
    (SELECT closing_note_policy FROM workspace_settings WHERE workspace_id = $1) AS settings_policy, \
    (SELECT closing_categories FROM workspace_settings WHERE workspace_id = $1) AS settings_categories, \
    (SELECT auto_close_after_micros FROM workspace_settings WHERE workspace_id = $1) AS settings_auto_close, \
    (SELECT updated_at FROM workspace_settings WHERE workspace_id = $1) AS settings_updated_at";

/// The settings in a row selected with [`COLUMNS_OF_WORKSPACE_1`]; the defaults when unset.
pub(super) fn settings_from_row(row: &AnyRow) -> Result<WorkspaceSettings, ApiError> {
    let policy: Option<String> = row.try_get("settings_policy")?;
    let Some(policy) = policy else {
        return Ok(WorkspaceSettings::default());
    };
    let corrupt = |what: &str| ApiError::Internal(format!("stored settings: bad {what}"));
    let categories: Option<String> = row.try_get("settings_categories")?;
    let auto_close: Option<i64> = row.try_get("settings_auto_close")?;
    Ok(WorkspaceSettings {
        closing_note_policy: ClosingNotePolicy::from_name(&policy)
            .ok_or_else(|| corrupt("policy"))?,
        closing_categories: serde_json::from_str(categories.as_deref().unwrap_or("[]"))
            .map_err(|_| corrupt("categories"))?,
        auto_close: auto_close
            .map(|micros| AutoClose::new(Duration::from_micros(micros.max(0) as u64)))
            .transpose()
            .map_err(|_| corrupt("auto-close"))?,
    })
}

impl ConversationStore {
    /// A workspace's settings with when they last changed; the defaults (and `None`) for a
    /// workspace that never changed them.
    pub(super) async fn settings_with_time(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
    ) -> Result<(WorkspaceSettings, Option<SystemTime>), ApiError> {
        let sql = format!("SELECT {COLUMNS_OF_WORKSPACE_1}");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .fetch_one(&mut *conn)
            .await?;
        let updated_at: Option<i64> = row.try_get("settings_updated_at")?;
        Ok((settings_from_row(&row)?, updated_at.map(from_micros)))
    }

    /// A workspace's settings, inside a transaction.
    pub(super) async fn settings_in(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
    ) -> Result<WorkspaceSettings, ApiError> {
        Ok(self.settings_with_time(conn, workspace).await?.0)
    }

    /// A workspace's settings and when they last changed.
    pub async fn settings(
        &self,
        workspace: WorkspaceId,
    ) -> Result<(WorkspaceSettings, Option<SystemTime>), ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.settings_with_time(&mut conn, workspace).await
    }

    /// Changes a workspace's settings: `change` turns the current ones into the new ones, under a
    /// lock, so concurrent updates of different fields both land. Turning auto-close off drops the
    /// pending deadlines; a new delay applies from each conversation's next human message.
    pub async fn update_settings(
        &self,
        workspace: WorkspaceId,
        change: impl FnOnce(&WorkspaceSettings) -> Result<WorkspaceSettings, ApiError>,
    ) -> Result<(WorkspaceSettings, SystemTime), ApiError> {
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        if self.db.backend() == charla_runtime::db::Backend::Postgres {
            // The workspace's settings row may not exist yet: lock the workspace instead.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("settings/{workspace}"))
                .execute(&mut *tx)
                .await?;
        }
        let (current, _) = self.settings_with_time(&mut tx, workspace).await?;
        let settings = change(&current)?;
        settings.validate()?;
        let settings = &settings;
        sqlx::query(
            "INSERT INTO workspace_settings
                 (workspace_id, closing_note_policy, closing_categories, auto_close_after_micros,
                  updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (workspace_id) DO UPDATE SET
                 closing_note_policy = excluded.closing_note_policy,
                 closing_categories = excluded.closing_categories,
                 auto_close_after_micros = excluded.auto_close_after_micros,
                 updated_at = excluded.updated_at",
        )
        .bind(workspace.to_string())
        .bind(settings.closing_note_policy.as_str())
        .bind(serde_json::to_string(&settings.closing_categories).unwrap_or_else(|_| "[]".into()))
        .bind(
            settings
                .auto_close
                .map(|a| i64::try_from(a.after().as_micros()).unwrap_or(i64::MAX)),
        )
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        if settings.auto_close.is_none() {
            sqlx::query(
                "UPDATE conversations SET auto_close_at = NULL
                 WHERE workspace_id = $1 AND status = 'open' AND auto_close_at IS NOT NULL",
            )
            .bind(workspace.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((settings.clone(), now))
    }
}
