//! Contact merges: closing the secondary contact's open conversation, exactly once, together with
//! the advance of the consumer's cursor over the contact event stream.

use std::collections::BTreeMap;

use charla_runtime::ApiError;
use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::workspace::WorkspaceId;

use super::ConversationStore;
use crate::domain::{CloseSource, ClosingNote, ContactId};
use crate::events::ConversationChange;

impl ConversationStore {
    /// Applies a merge from the contact event stream, exactly once: `contact` was merged into
    /// `into`, and its open conversation closes. The effect and the cursor's advance commit
    /// together, so a redelivered event changes nothing.
    pub async fn apply_contact_merge(
        &self,
        consumer: &ConsumerCursor,
        partition: u32,
        sequence: u64,
        (workspace, contact, into): (WorkspaceId, ContactId, ContactId),
    ) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        if !consumer.claim(&mut tx, partition, sequence).await? {
            return Ok(());
        }
        self.mark_merged(&mut tx, workspace, contact, into).await?;
        let Some(mut conversation) = self.open_of(&mut tx, workspace, contact, true).await? else {
            tx.commit().await?;
            return Ok(());
        };
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
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(())
    }

    /// Moves the consumer's cursor past events that concern no conversation (`positions`, each a
    /// partition and a sequence, in stream order), in one transaction; like a single event, an
    /// event applied before is skipped, and a gap is refused.
    pub async fn pass_over_contact_events(
        &self,
        consumer: &ConsumerCursor,
        positions: &[(u32, u64)],
    ) -> Result<(), ApiError> {
        let mut ranges: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for &(partition, sequence) in positions {
            ranges
                .entry(partition)
                .and_modify(|range| range.1 = sequence)
                .or_insert((sequence, sequence));
        }
        // Moving the cursor again after a database crash costs nothing.
        let mut tx = self.db.begin_without_flush().await?;
        for (partition, (first, last)) in ranges {
            consumer
                .claim_through(&mut tx, partition, first, last)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records, under the contact's lock, that `contact` was merged into `into`: openings that
    /// come after are refused (see `guard_contact`).
    async fn mark_merged(
        &self,
        conn: &mut sqlx::AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
        into: ContactId,
    ) -> Result<(), ApiError> {
        match self.guard_contact(conn, workspace, contact).await {
            Ok(()) | Err(ApiError::FailedPrecondition { .. }) => {}
            Err(error) => return Err(error),
        }
        sqlx::query(
            "INSERT INTO merged_contacts (workspace_id, contact_id, merged_into) VALUES ($1, $2, $3)
             ON CONFLICT (workspace_id, contact_id) DO NOTHING",
        )
        .bind(workspace.to_string())
        .bind(contact.to_string())
        .bind(into.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
