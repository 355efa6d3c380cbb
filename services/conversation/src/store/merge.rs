//! Contact merges: closing the secondary contact's open conversation, exactly once, together with
//! the consumer's cursor over the contact event stream.

use charla_runtime::ApiError;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::ConversationStore;
use crate::domain::{CloseSource, ClosingNote, ContactId};
use crate::events::ConversationChange;

impl ConversationStore {
    /// The consumer's stored positions: (partition, last sequence applied).
    pub async fn cursor(&self, consumer: &str) -> Result<Vec<(u32, u64)>, ApiError> {
        let rows =
            sqlx::query("SELECT partition_no, seq FROM consumer_cursors WHERE consumer = $1")
                .bind(consumer.to_owned())
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

    /// Locks the consumer's position in `partition` and says whether `sequence` is new.
    async fn claim(
        &self,
        conn: &mut AnyConnection,
        consumer: &str,
        partition: u32,
        sequence: u64,
    ) -> Result<bool, ApiError> {
        sqlx::query(
            "INSERT INTO consumer_cursors (consumer, partition_no, seq) VALUES ($1, $2, 0)
             ON CONFLICT (consumer, partition_no) DO NOTHING",
        )
        .bind(consumer.to_owned())
        .bind(i64::from(partition))
        .execute(&mut *conn)
        .await?;
        let sql = format!(
            "SELECT seq FROM consumer_cursors WHERE consumer = $1 AND partition_no = $2{}",
            self.for_update()
        );
        let applied: i64 = sqlx::query(AssertSqlSafe(sql))
            .bind(consumer.to_owned())
            .bind(i64::from(partition))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if applied as u64 >= sequence {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE consumer_cursors SET seq = $3 WHERE consumer = $1 AND partition_no = $2",
        )
        .bind(consumer.to_owned())
        .bind(i64::from(partition))
        .bind(sequence as i64)
        .execute(&mut *conn)
        .await?;
        Ok(true)
    }

    /// Applies one event of another service's stream, exactly once: `close_merged` names the
    /// contact whose open conversation the event closes (none for events that close nothing).
    /// The effect and the cursor's advance commit together, so a redelivered event changes nothing.
    pub async fn apply_contact_event(
        &self,
        consumer: &str,
        partition: u32,
        sequence: u64,
        close_merged: Option<(WorkspaceId, ContactId)>,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        if !self.claim(&mut tx, consumer, partition, sequence).await? {
            return Ok(());
        }
        let mut closed_any = false;
        if let Some((workspace, contact)) = close_merged
            && let Some(mut conversation) = self.open_of(&mut tx, workspace, contact, true).await?
        {
            let now = self.now();
            let settings = self.settings_in(&mut tx, workspace).await?;
            conversation.close(
                CloseSource::ContactMerge,
                None,
                ClosingNote::default(),
                now,
                &settings,
            )?;
            self.save(&mut tx, &conversation).await?;
            self.record(&mut tx, &conversation, now, ConversationChange::Closed)
                .await?;
            closed_any = true;
        }
        tx.commit().await?;
        if closed_any {
            self.events.notify_committed();
        }
        Ok(())
    }
}
