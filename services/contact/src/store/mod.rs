//! The contact store: every read and write of contacts, each write in one transaction together
//! with the event that records it (see `charla_runtime::event_log`).

mod contacts;
mod identities;
mod import;
mod merge;
mod rows;

use charla_runtime::ApiError;
use charla_runtime::clock::SharedClock;
use charla_runtime::db::{Database, MigrationFile, Migrations};
use charla_runtime::event_log::{self, EventLog, EventPosition};
use charla_runtime::test_clock;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AnyConnection, Row};

use crate::domain::{ChannelIdentity, Contact, ContactError, ContactId};
use crate::events::{self, ContactChange};

pub use contacts::{ContactFilter, ContactPage};
pub use import::ImportOutcome;
pub use merge::Merged;

/// The migrations of the contact database.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        event_log::SQLITE_MIGRATION,
        event_log::SQLITE_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::SQLITE_PARTITION_COUNT_MIGRATION,
        CONTACTS_MIGRATION,
        SEARCH_NAME_MIGRATION,
        EXTERNAL_ID_MIGRATION,
        MERGES_MIGRATION,
        test_clock::fleet::MIGRATION,
    ],
    postgres: &[
        event_log::POSTGRES_MIGRATION,
        event_log::POSTGRES_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::POSTGRES_PARTITION_COUNT_MIGRATION,
        CONTACTS_MIGRATION,
        SEARCH_NAME_MIGRATION,
        EXTERNAL_ID_MIGRATION,
        MERGES_MIGRATION,
        test_clock::fleet::MIGRATION,
    ],
};

const MERGES_MIGRATION: MigrationFile = MigrationFile {
    version: 5,
    description: "contact merges",
    sql: include_str!("../../migrations/0005_merges.sql"),
};

const EXTERNAL_ID_MIGRATION: MigrationFile = MigrationFile {
    version: 4,
    description: "contact external id",
    sql: include_str!("../../migrations/0004_contact_external_id.sql"),
};

const SEARCH_NAME_MIGRATION: MigrationFile = MigrationFile {
    version: 3,
    description: "contact search name",
    sql: include_str!("../../migrations/0003_contact_search_name.sql"),
};

const CONTACTS_MIGRATION: MigrationFile = MigrationFile {
    version: 2,
    description: "contacts",
    sql: include_str!("../../migrations/0002_contacts.sql"),
};

/// Contacts and their events, in one database.
#[derive(Debug, Clone)]
pub struct ContactStore {
    db: Database,
    events: EventLog,
    clock: SharedClock,
}

impl ContactStore {
    /// A store over a migrated database.
    pub fn new(db: Database, events: EventLog, clock: SharedClock) -> Self {
        Self { db, events, clock }
    }

    /// The event log the store writes to.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Appends the event recording `change` to the transaction.
    async fn record(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
        change: ContactChange,
    ) -> Result<EventPosition, ApiError> {
        let now = self.clock.now_stored();
        self.events
            .append(conn, workspace, now, |position| {
                events::encode(position, workspace, contact, now, change)
            })
            .await
    }

    /// Loads a contact with its identities, optionally locking its row.
    async fn load(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        id: ContactId,
        lock: bool,
    ) -> Result<Contact, ApiError> {
        let lock = if lock { self.db.row_lock() } else { "" };
        let sql = format!(
            "SELECT {} FROM contacts WHERE workspace_id = $1 AND contact_id = $2{lock}",
            rows::CONTACT_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(ContactError::NotFound(id))?;
        let mut contact = rows::contact_from_row(workspace, &row)?;
        contact.identities = self.identities_of(conn, workspace, id).await?;
        Ok(contact)
    }

    async fn identities_of(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Vec<ChannelIdentity>, ApiError> {
        sqlx::query(
            "SELECT channel_type, channel_id, external_id FROM contact_identities
             WHERE workspace_id = $1 AND contact_id = $2
             ORDER BY created_at, channel_type, channel_id, external_id",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(rows::identity_from_row)
        .collect()
    }

    /// The contact that owns `identity`, if any.
    async fn owner_of(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        identity: &ChannelIdentity,
    ) -> Result<Option<ContactId>, ApiError> {
        let row = sqlx::query(
            "SELECT contact_id FROM contact_identities
             WHERE workspace_id = $1 AND channel_type = $2 AND channel_id = $3 AND external_id = $4",
        )
        .bind(workspace.to_string())
        .bind(identity.channel_type.as_str())
        .bind(identity.channel_id.clone())
        .bind(identity.external_id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            let id: String = row.try_get(0)?;
            uuid::Uuid::parse_str(&id)
                .map(ContactId::from_uuid)
                .map_err(|e| ApiError::Internal(format!("stored contact id: {e}")))
        })
        .transpose()
    }

    /// Writes the contact's profile to its row, and its tags.
    async fn save_profile(
        &self,
        conn: &mut AnyConnection,
        contact: &Contact,
    ) -> Result<(), ApiError> {
        ProfileValues::of(contact)
            .bind(
                sqlx::query(
                    "UPDATE contacts SET first_name = $3, last_name = $4, email = $5, phone = $6,
                         language = $7, custom_fields = $8, tags = $9, status = $10,
                         merged_into = $11, updated_at = $12, search_name = $13
                     WHERE workspace_id = $1 AND contact_id = $2",
                )
                .bind(contact.workspace.to_string())
                .bind(contact.id.to_string()),
            )
            .execute(&mut *conn)
            .await?;
        self.save_tags(conn, contact).await
    }

    /// Replaces the contact's rows in `contact_tags`.
    async fn save_tags(&self, conn: &mut AnyConnection, contact: &Contact) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM contact_tags WHERE workspace_id = $1 AND contact_id = $2")
            .bind(contact.workspace.to_string())
            .bind(contact.id.to_string())
            .execute(&mut *conn)
            .await?;
        self.insert_tags(conn, contact).await
    }

    /// Adds the contact's rows to `contact_tags` (a new contact has none yet).
    async fn insert_tags(
        &self,
        conn: &mut AnyConnection,
        contact: &Contact,
    ) -> Result<(), ApiError> {
        for tag in contact.profile.tags.iter() {
            sqlx::query(
                "INSERT INTO contact_tags (workspace_id, tag, contact_id) VALUES ($1, $2, $3)",
            )
            .bind(contact.workspace.to_string())
            .bind(tag.as_str().to_owned())
            .bind(contact.id.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The values of a contact row's profile columns, bound in this order: first name, last name,
/// email, phone, language, custom fields, tags, status, merged into, updated at, search name.
struct ProfileValues {
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    language: String,
    custom_fields: String,
    tags: String,
    status: &'static str,
    merged_into: Option<String>,
    updated_at: i64,
    search_name: String,
}

impl ProfileValues {
    fn of(contact: &Contact) -> Self {
        let profile = &contact.profile;
        let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
        Self {
            first_name: profile.first_name.as_str().to_owned(),
            last_name: profile.last_name.as_str().to_owned(),
            email: text(profile.email.as_ref().map(|e| e.as_str())),
            phone: text(profile.phone.as_ref().map(|p| p.as_str())),
            language: text(profile.language.as_ref().map(|l| l.as_str())),
            custom_fields: rows::custom_fields_to_json(&profile.custom_fields),
            tags: rows::tags_to_json(&profile.tags),
            status: rows::status_name(contact.status),
            merged_into: contact.merged_into().map(|id| id.to_string()),
            updated_at: charla_runtime::clock::to_micros(contact.updated_at),
            search_name: search_name(profile),
        }
    }

    /// `query` with these values bound after its own.
    fn bind(self, query: AnyQuery<'_>) -> AnyQuery<'_> {
        query
            .bind(self.first_name)
            .bind(self.last_name)
            .bind(self.email)
            .bind(self.phone)
            .bind(self.language)
            .bind(self.custom_fields)
            .bind(self.tags)
            .bind(self.status)
            .bind(self.merged_into)
            .bind(self.updated_at)
            .bind(self.search_name)
    }
}

/// A statement over the `Any` driver, with its bound values.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The full name as the name filter matches it: lower-cased with Unicode's rules.
fn search_name(profile: &crate::domain::Profile) -> String {
    format!(
        "{} {}",
        profile.first_name.as_str(),
        profile.last_name.as_str()
    )
    .to_lowercase()
}
