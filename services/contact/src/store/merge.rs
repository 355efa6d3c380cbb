//! Blocking, unblocking and merging contacts.

use charla_runtime::ApiError;
use charla_runtime::workspace::WorkspaceId;
use sqlx::AnyConnection;

use super::ContactStore;
use crate::domain::{Contact, ContactError, ContactId, ContactStatus, merge_profiles};
use crate::events::ContactChange;

impl ContactStore {
    /// Blocks or unblocks a contact. Asking for the status it already has changes nothing and
    /// writes no event, so retries are safe. A merged contact can't be blocked or unblocked.
    pub async fn set_blocked(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        blocked: bool,
    ) -> Result<Contact, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut contact = self.load(&mut tx, workspace, id, true).await?;
        let wanted = if blocked {
            ContactStatus::Blocked
        } else {
            ContactStatus::Active
        };
        match contact.status {
            ContactStatus::Merged { into } => {
                return Err(ContactError::Merged { contact: id, into }.into());
            }
            current if current == wanted => return Ok(contact),
            _ => {}
        }
        contact.status = wanted;
        contact.updated_at = self.clock.now_stored();
        self.save_profile(&mut tx, &contact).await?;
        let change = if blocked {
            ContactChange::Blocked
        } else {
            ContactChange::Unblocked
        };
        self.record(&mut tx, workspace, id, change).await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(contact)
    }

    /// Merges `secondary` into `primary`: identities and tags move, empty profile fields are
    /// filled, the secondary is marked merged, and ContactsMerged is written in the same
    /// transaction. Repeating a merge that is already done returns the result again.
    pub async fn merge(
        &self,
        workspace: WorkspaceId,
        primary_id: ContactId,
        secondary_id: ContactId,
    ) -> Result<(Contact, Contact), ApiError> {
        if primary_id == secondary_id {
            return Err(ContactError::MergeIntoSelf.into());
        }
        let mut tx = self.db.pool().begin().await?;
        // Lock in id order, so two merges of the same pair can't deadlock.
        let (mut primary, mut secondary) = if primary_id < secondary_id {
            let primary = self.load(&mut tx, workspace, primary_id, true).await?;
            (
                primary,
                self.load(&mut tx, workspace, secondary_id, true).await?,
            )
        } else {
            let secondary = self.load(&mut tx, workspace, secondary_id, true).await?;
            (
                self.load(&mut tx, workspace, primary_id, true).await?,
                secondary,
            )
        };
        if secondary.merged_into() == Some(primary_id) {
            return Ok((primary, secondary));
        }
        for contact in [&primary, &secondary] {
            if let Some(into) = contact.merged_into() {
                return Err(ContactError::Merged {
                    contact: contact.id,
                    into,
                }
                .into());
            }
        }
        let now = self.clock.now_stored();
        self.move_identities(&mut tx, workspace, secondary_id, primary_id)
            .await?;
        primary.identities.append(&mut secondary.identities);
        primary.profile = merge_profiles(&primary.profile, &secondary.profile);
        primary.updated_at = now;
        secondary.status = ContactStatus::Merged { into: primary_id };
        secondary.updated_at = now;
        self.save_profile(&mut tx, &primary).await?;
        self.save_profile(&mut tx, &secondary).await?;
        self.record(
            &mut tx,
            workspace,
            primary_id,
            ContactChange::Updated(primary.clone()),
        )
        .await?;
        self.record(
            &mut tx,
            workspace,
            secondary_id,
            ContactChange::Merged {
                primary: primary_id,
                secondary: secondary_id,
            },
        )
        .await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok((primary, secondary))
    }

    async fn move_identities(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        from: ContactId,
        to: ContactId,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE contact_identities SET contact_id = $3 WHERE workspace_id = $1 AND contact_id = $2",
        )
        .bind(workspace.to_string())
        .bind(from.to_string())
        .bind(to.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
