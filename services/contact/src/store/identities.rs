//! Channel identities: attaching them, removing them, and resolving an identity to its contact.

use charla_runtime::ApiError;
use charla_runtime::clock::to_micros;
use charla_runtime::workspace::WorkspaceId;
use sqlx::AnyConnection;

use super::ContactStore;
use crate::domain::{ChannelIdentity, Contact, ContactError, ContactId, Profile};
use crate::events::ContactChange;

impl ContactStore {
    /// Gives `contact` the identity, or fails naming the contact that has it. Relies on the
    /// identity's primary key: of two transactions inserting the same identity, the second waits
    /// for the first and then finds the row taken.
    pub(super) async fn attach_identity(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
        identity: &ChannelIdentity,
    ) -> Result<(), ApiError> {
        let inserted = sqlx::query(
            "INSERT INTO contact_identities
                 (workspace_id, channel_type, channel_id, external_id, contact_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (workspace_id, channel_type, channel_id, external_id) DO NOTHING",
        )
        .bind(workspace.to_string())
        .bind(identity.channel_type.as_str())
        .bind(identity.channel_id.clone())
        .bind(identity.external_id.clone())
        .bind(contact.to_string())
        .bind(to_micros(self.clock.now_stored()))
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(());
        }
        let owner = self
            .owner_of(conn, workspace, identity)
            .await?
            .unwrap_or(contact);
        Err(ContactError::IdentityTaken {
            identity: identity.clone(),
            owner,
        }
        .into())
    }

    /// Adds an identity to a contact.
    pub async fn add_identity(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        identity: ChannelIdentity,
    ) -> Result<Contact, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut contact = self.load(&mut tx, workspace, id, true).await?;
        if let Some(into) = contact.merged_into() {
            return Err(ContactError::Merged { contact: id, into }.into());
        }
        if !contact.identities.contains(&identity) {
            self.attach_identity(&mut tx, workspace, id, &identity)
                .await?;
            contact.identities.push(identity);
            self.touch(&mut tx, &mut contact).await?;
        }
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(contact)
    }

    /// Removes an identity from a contact.
    pub async fn remove_identity(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        identity: ChannelIdentity,
    ) -> Result<Contact, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut contact = self.load(&mut tx, workspace, id, true).await?;
        if !contact.identities.contains(&identity) {
            return Err(ContactError::IdentityNotFound {
                contact: id,
                identity,
            }
            .into());
        }
        sqlx::query(
            "DELETE FROM contact_identities WHERE workspace_id = $1 AND channel_type = $2
                 AND channel_id = $3 AND external_id = $4",
        )
        .bind(workspace.to_string())
        .bind(identity.channel_type.as_str())
        .bind(identity.channel_id.clone())
        .bind(identity.external_id.clone())
        .execute(&mut *tx)
        .await?;
        contact.identities.retain(|owned| owned != &identity);
        self.touch(&mut tx, &mut contact).await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(contact)
    }

    /// Marks the contact changed now and records a ContactUpdated event.
    async fn touch(&self, conn: &mut AnyConnection, contact: &mut Contact) -> Result<(), ApiError> {
        contact.updated_at = self.clock.now_stored();
        self.save_profile(conn, contact).await?;
        self.record(
            conn,
            contact.workspace,
            contact.id,
            ContactChange::Updated(contact.clone()),
        )
        .await?;
        Ok(())
    }

    /// The contact that owns `identity`, created with `profile` when there is none. Concurrent
    /// calls for one new identity agree on a single contact: each tries to create it, the
    /// identity's primary key lets one win, and the others roll back and read the winner's.
    /// Returns whether this call created the contact.
    pub async fn resolve(
        &self,
        workspace: WorkspaceId,
        identity: ChannelIdentity,
        profile: Profile,
    ) -> Result<(Contact, bool), ApiError> {
        // A lost race means the winner has committed the identity, so the next round finds it;
        // only a delete racing the create needs a further round.
        for _ in 0..3 {
            if let Some(owner) = self.find_owner(workspace, &identity).await? {
                match self.get(workspace, owner).await {
                    Ok(contact) => return Ok((contact, false)),
                    Err(ApiError::NotFound { .. }) => continue,
                    Err(error) => return Err(error),
                }
            }
            let contact = Contact::new(
                workspace,
                profile.clone(),
                vec![identity.clone()],
                self.clock.now_stored(),
            );
            let mut tx = self.db.pool().begin().await?;
            match self.insert(&mut tx, &contact, None).await {
                Ok(()) => {}
                Err(super::contacts::InsertError::Api(ApiError::AlreadyExists { .. })) => continue,
                Err(super::contacts::InsertError::Api(error)) => return Err(error),
                Err(super::contacts::InsertError::KeyReplayed) => continue,
            }
            self.record(
                &mut tx,
                workspace,
                contact.id,
                ContactChange::Created(contact.clone()),
            )
            .await?;
            tx.commit().await?;
            self.events.notify_committed(workspace);
            return Ok((contact, true));
        }
        Err(ApiError::Unavailable(
            "the channel identity kept changing owner; retry".into(),
        ))
    }

    async fn find_owner(
        &self,
        workspace: WorkspaceId,
        identity: &ChannelIdentity,
    ) -> Result<Option<ContactId>, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.owner_of(&mut conn, workspace, identity).await
    }
}
