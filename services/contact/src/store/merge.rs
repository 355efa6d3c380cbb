//! Blocking, unblocking and merging contacts.

use charla_runtime::ApiError;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::ContactStore;
use crate::domain::{Contact, ContactError, ContactId, ContactStatus, merge_profiles};
use crate::events::ContactChange;

/// What a merge answers.
#[derive(Debug, Clone)]
pub struct Merged {
    pub primary: Contact,
    pub secondary: Contact,
    /// Where the merge's ContactsMerged event is in the contact event stream (partition,
    /// sequence); unknown for a merge recorded before merges kept it.
    pub position: Option<(u32, u64)>,
}

/// A merge as `contact_merges` keeps it.
struct DoneMerge {
    primary: ContactId,
    secondary: ContactId,
    position: (u32, u64),
}

fn done_merge(row: &sqlx::any::AnyRow) -> Result<DoneMerge, ApiError> {
    let id = |index: usize| -> Result<ContactId, ApiError> {
        let text: String = row.try_get(index)?;
        Uuid::parse_str(&text)
            .map(ContactId::from_uuid)
            .map_err(|e| ApiError::Internal(format!("stored merge: {e}")))
    };
    Ok(DoneMerge {
        primary: id(0)?,
        secondary: id(1)?,
        position: (
            row.try_get::<i64, _>(2)? as u32,
            row.try_get::<i64, _>(3)? as u64,
        ),
    })
}

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
    /// transaction. Repeating a merge that is already done returns the result again, with the
    /// position of the merge's event; so does a retry with the first call's `request_id`, whatever
    /// happened to the contacts since. A `request_id` used for another pair is refused.
    pub async fn merge(
        &self,
        workspace: WorkspaceId,
        primary_id: ContactId,
        secondary_id: ContactId,
        request_id: Option<Uuid>,
    ) -> Result<Merged, ApiError> {
        if primary_id == secondary_id {
            return Err(ContactError::MergeIntoSelf.into());
        }
        let mut tx = self.db.pool().begin().await?;
        if let Some(done) = self
            .merge_by_request(&mut tx, workspace, request_id)
            .await?
        {
            if done.primary != primary_id || done.secondary != secondary_id {
                return Err(ApiError::invalid(
                    "request_id",
                    "was already used for a merge of other contacts; use a new one",
                ));
            }
            return self.merged_now(&mut tx, workspace, done).await;
        }
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
            let position = self
                .merge_of(&mut tx, workspace, secondary_id)
                .await?
                .map(|done| done.position);
            return Ok(Merged {
                primary,
                secondary,
                position,
            });
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
        let position = self
            .record(
                &mut tx,
                workspace,
                secondary_id,
                ContactChange::Merged {
                    primary: primary_id,
                    secondary: secondary_id,
                },
            )
            .await?;
        let done = DoneMerge {
            primary: primary_id,
            secondary: secondary_id,
            position: (position.partition, position.sequence),
        };
        self.remember_merge(&mut tx, workspace, &done, request_id)
            .await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(Merged {
            primary,
            secondary,
            position: Some(done.position),
        })
    }

    /// The merge a `request_id` made, if it made one.
    async fn merge_by_request(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        request_id: Option<Uuid>,
    ) -> Result<Option<DoneMerge>, ApiError> {
        let Some(request_id) = request_id else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT primary_contact_id, secondary_contact_id, partition_no, seq FROM contact_merges
             WHERE workspace_id = $1 AND request_id = $2",
        )
        .bind(workspace.to_string())
        .bind(request_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(done_merge).transpose()
    }

    /// The merge that merged `secondary`, if this service recorded one.
    async fn merge_of(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        secondary: ContactId,
    ) -> Result<Option<DoneMerge>, ApiError> {
        let row = sqlx::query(
            "SELECT primary_contact_id, secondary_contact_id, partition_no, seq FROM contact_merges
             WHERE workspace_id = $1 AND secondary_contact_id = $2",
        )
        .bind(workspace.to_string())
        .bind(secondary.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(done_merge).transpose()
    }

    /// The answer to a retried merge: both contacts as they are now, and the merge's position.
    async fn merged_now(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        done: DoneMerge,
    ) -> Result<Merged, ApiError> {
        Ok(Merged {
            primary: self.load(conn, workspace, done.primary, false).await?,
            secondary: self.load(conn, workspace, done.secondary, false).await?,
            position: Some(done.position),
        })
    }

    async fn remember_merge(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        done: &DoneMerge,
        request_id: Option<Uuid>,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO contact_merges
                 (workspace_id, secondary_contact_id, primary_contact_id, request_id, partition_no, seq)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(workspace.to_string())
        .bind(done.secondary.to_string())
        .bind(done.primary.to_string())
        .bind(request_id.map(|id| id.to_string()))
        .bind(i64::from(done.position.0))
        .bind(done.position.1 as i64)
        .execute(&mut *conn)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::invalid(
                "request_id",
                "is in use by a concurrent merge of other contacts; use a new one",
            ),
            _ => ApiError::from(error),
        })?;
        Ok(())
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
