//! What a workspace's reports reflect: the position of each workspace's latest applied event in
//! each partition, advanced in the transaction that applies the event. Reports answer these
//! rather than the consumer's cursor, which counts every workspace's events.

use charla_runtime::ApiError;
use charla_runtime::applied::Positions;
use sqlx::{AnyConnection, Row};

use super::MetricsStore;

impl MetricsStore {
    /// Inside the transaction applying `workspace`'s event at (`partition`, `sequence`).
    pub(super) async fn advance_workspace_position(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        partition: u32,
        sequence: u64,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO workspace_positions (workspace_id, partition_no, seq) VALUES ($1, $2, $3)
             ON CONFLICT (workspace_id, partition_no) DO UPDATE SET seq = excluded.seq",
        )
        .bind(workspace.to_owned())
        .bind(i64::from(partition))
        .bind(sequence as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The positions of `workspace`'s latest applied events, by partition.
    pub async fn workspace_positions(&self, workspace: &str) -> Result<Positions, ApiError> {
        let rows = sqlx::query(
            "SELECT partition_no, seq FROM workspace_positions WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>(0)? as u32,
                    row.try_get::<i64, _>(1)? as u64,
                ))
            })
            .collect()
    }
}
