//! The workspaces' report settings: the re-contact window, read by reports, and every version of
//! their business hours and service level targets, read as conversations are counted.

use std::collections::HashMap;

use charla_proto::charla::metrics::v1 as pb;
use charla_runtime::ApiError;
use prost::Message as _;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::MetricsStore;
use super::statement::Statement;
use crate::domain::{
    BusinessHours, RecontactWindow, ReportSettings, ScheduleHistory, SlaTargets, Versions,
};
use crate::grpc::business_hours::{business_hours_to_proto, parse_business_hours};
use crate::grpc::settings::{parse_sla_targets, sla_targets_to_proto};

/// A schedule's stored bytes: the API's own message, a format that never changes meaning.
fn encode_schedule(hours: &BusinessHours) -> Vec<u8> {
    business_hours_to_proto(hours).encode_to_vec()
}

fn decode_schedule(bytes: &[u8]) -> Result<BusinessHours, ApiError> {
    let unreadable = || ApiError::Internal("a stored business hours schedule is unreadable".into());
    let message = pb::BusinessHours::decode(bytes).map_err(|_| unreadable())?;
    parse_business_hours("business_hours", Some(&message)).map_err(|_| unreadable())
}

fn schedule_of(row: &sqlx::any::AnyRow) -> Result<Option<BusinessHours>, ApiError> {
    row.try_get::<Option<Vec<u8>>, _>("schedule")?
        .map(|bytes| decode_schedule(&bytes))
        .transpose()
}

/// Targets' stored bytes: the API's own message, as for schedules.
fn encode_targets(targets: &SlaTargets) -> Vec<u8> {
    sla_targets_to_proto(targets).encode_to_vec()
}

fn targets_of(row: &sqlx::any::AnyRow) -> Result<Option<SlaTargets>, ApiError> {
    let unreadable = || ApiError::Internal("stored service level targets are unreadable".into());
    row.try_get::<Option<Vec<u8>>, _>("targets")?
        .map(|bytes| {
            let message = pb::SlaTargets::decode(bytes.as_slice()).map_err(|_| unreadable())?;
            parse_sla_targets("sla_targets", &message).map_err(|_| unreadable())
        })
        .transpose()
}

fn window_of(row: Option<sqlx::any::AnyRow>) -> Result<RecontactWindow, ApiError> {
    let hours = match row {
        Some(row) => row.try_get::<Option<i64>, _>("recontact_window_hours")?,
        None => None,
    };
    let Some(hours) = hours else {
        return Ok(RecontactWindow::DEFAULT);
    };
    let seconds = u64::try_from(hours).unwrap_or_default() * 3600;
    RecontactWindow::new(std::time::Duration::from_secs(seconds))
        .map_err(|e| ApiError::Internal(format!("stored re-contact window: {e}")))
}

/// Records `value` (`None`: removed) as the version of a versioned setting in effect from `now`
/// in `table`, whose value column is `column`.
async fn add_version(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    workspace: &str,
    now: i64,
    value: Option<Vec<u8>>,
) -> Result<(), ApiError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (workspace_id, effective_from, {column}) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, effective_from) DO UPDATE SET {column} = excluded.{column}"
    )))
    .bind(workspace.to_owned())
    .bind(now)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl MetricsStore {
    /// The report settings of `workspace` (the defaults when never changed): its window, and
    /// its latest business hours and targets.
    pub async fn report_settings(&self, workspace: &str) -> Result<ReportSettings, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.settings_in(&mut conn, workspace).await
    }

    /// The re-contact window of `workspace`: all a report needs of its settings.
    pub async fn recontact_window(&self, workspace: &str) -> Result<RecontactWindow, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.window_in(&mut conn, workspace).await
    }

    async fn window_in(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
    ) -> Result<RecontactWindow, ApiError> {
        let row = sqlx::query(
            "SELECT recontact_window_hours FROM report_settings WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        window_of(row)
    }

    async fn settings_in(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
    ) -> Result<ReportSettings, ApiError> {
        let recontact_window = self.window_in(conn, workspace).await?;
        let latest = |table: &str| {
            format!(
                "SELECT * FROM {table} WHERE workspace_id = $1 ORDER BY effective_from DESC LIMIT 1"
            )
        };
        // Unprepared, as every `SELECT *` here: a prepared one fails on PostgreSQL ("cached plan
        // must not change result type") once another replica's migration adds a column.
        let schedule = sqlx::query(AssertSqlSafe(latest("business_hours_versions")))
            .persistent(false)
            .bind(workspace.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        let targets = sqlx::query(AssertSqlSafe(latest("sla_target_versions")))
            .persistent(false)
            .bind(workspace.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        Ok(ReportSettings {
            recontact_window,
            business_hours: schedule.as_ref().map(schedule_of).transpose()?.flatten(),
            sla_targets: targets.as_ref().map(targets_of).transpose()?.flatten(),
        })
    }

    /// Changes the report settings of `workspace` to what `update` makes of the current ones, in
    /// one transaction (two admins' updates of different fields both hold). Changed business
    /// hours or targets take effect at `now` (microseconds).
    pub async fn update_report_settings(
        &self,
        workspace: &str,
        now: i64,
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
        let current = self.settings_in(&mut tx, workspace).await?;
        let next = update(&current)?;
        sqlx::query(
            "UPDATE report_settings SET recontact_window_hours = $2 WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .bind(i64::from(next.recontact_window.hours()))
        .execute(&mut *tx)
        .await?;
        if next.sla_targets != current.sla_targets {
            let targets = next.sla_targets.as_ref().map(encode_targets);
            add_version(
                &mut tx,
                "sla_target_versions",
                "targets",
                workspace,
                now,
                targets,
            )
            .await?;
        }
        if next.business_hours != current.business_hours {
            let schedule = next.business_hours.as_ref().map(encode_schedule);
            add_version(
                &mut tx,
                "business_hours_versions",
                "schedule",
                workspace,
                now,
                schedule,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(next)
    }

    /// Every version of the business hours of `workspaces`, for counting conversations.
    pub(super) async fn schedule_histories(
        &self,
        conn: &mut AnyConnection,
        workspaces: &[&str],
    ) -> Result<HashMap<String, ScheduleHistory>, ApiError> {
        self.histories(conn, "business_hours_versions", workspaces, schedule_of)
            .await
    }

    /// Every version of the service level targets of `workspaces`, for counting conversations.
    pub(super) async fn sla_histories(
        &self,
        conn: &mut AnyConnection,
        workspaces: &[&str],
    ) -> Result<HashMap<String, Versions<SlaTargets>>, ApiError> {
        self.histories(conn, "sla_target_versions", workspaces, targets_of)
            .await
    }

    /// Every version in `table` of the settings of `workspaces`, each read by `value_of`.
    async fn histories<T>(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        workspaces: &[&str],
        value_of: fn(&sqlx::any::AnyRow) -> Result<Option<T>, ApiError>,
    ) -> Result<HashMap<String, Versions<T>>, ApiError> {
        let mut versions: HashMap<String, Vec<(i64, Option<T>)>> = HashMap::new();
        for chunk in workspaces.chunks(500) {
            let mut query = Statement::new(
                self.db.backend(),
                format!("SELECT * FROM {table} WHERE workspace_id IN "),
            );
            query.push_list(chunk.iter().map(|w| w.to_string()));
            for row in query.query().fetch_all(&mut *conn).await? {
                versions
                    .entry(row.try_get("workspace_id")?)
                    .or_default()
                    .push((row.try_get("effective_from")?, value_of(&row)?));
            }
        }
        Ok(versions
            .into_iter()
            .map(|(workspace, versions)| (workspace, Versions::new(versions)))
            .collect())
    }
}
