//! Importing one contact row: created like CreateContact, or, when the row's external id was
//! imported before in the workspace, the contact that import created, untouched.

use charla_runtime::ApiError;
use charla_runtime::workspace::WorkspaceId;

use super::ContactStore;
use super::contacts::CreationKey;
use crate::domain::{ChannelIdentity, Contact, ExternalId, Profile};

/// What became of one imported row.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    /// A contact was created now.
    Imported(Contact),
    /// The row's external id was imported before; this is that contact, and nothing changed.
    Unchanged(Contact),
}

impl ContactStore {
    /// Imports one row in its own transaction. Rows without an external id always create a
    /// contact; with one, concurrent imports of the same id agree on a single contact.
    pub async fn import(
        &self,
        workspace: WorkspaceId,
        external_id: Option<ExternalId>,
        profile: Profile,
        identities: Vec<ChannelIdentity>,
    ) -> Result<ImportOutcome, ApiError> {
        let key = external_id.map(CreationKey::External);
        let (contact, created) = self
            .create_keyed(workspace, profile, identities, key)
            .await?;
        Ok(if created {
            ImportOutcome::Imported(contact)
        } else {
            ImportOutcome::Unchanged(contact)
        })
    }
}
