//! Creating, reading, updating, deleting and listing contacts.

use std::collections::{HashMap, HashSet};

use charla_runtime::ApiError;
use charla_runtime::clock::to_micros;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use uuid::Uuid;

use super::{ContactStore, ProfileValues, rows};
use crate::domain::{
    ChannelIdentity, Contact, ContactError, ContactId, ExternalId, Profile, ProfileField,
};
use crate::events::ContactChange;

/// Which contacts a list returns. Empty fields don't filter.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Contained in the first, last or full name, case-insensitively.
    pub name: String,
    /// Exactly this (lower-cased) email.
    pub email: String,
    /// Exactly this (E.164) phone.
    pub phone: String,
    /// Carries this tag.
    pub tag: String,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ContactPage {
    /// The contacts, newest first.
    pub contacts: Vec<Contact>,
    /// The id to continue after, when there are more.
    pub next_after: Option<ContactId>,
}

/// What makes creating a contact idempotent: a call that repeats the key finds the contact the
/// first call created instead of creating another.
#[derive(Debug, Clone)]
pub(super) enum CreationKey {
    /// CreateContact's `request_id`.
    Request(Uuid),
    /// An imported row's `external_id`.
    External(ExternalId),
}

impl CreationKey {
    /// The column holding the key; a unique index over it and `workspace_id` settles races.
    fn column(&self) -> &'static str {
        match self {
            Self::Request(_) => "request_id",
            Self::External(_) => "external_id",
        }
    }

    fn value(&self) -> String {
        match self {
            Self::Request(id) => id.to_string(),
            Self::External(id) => id.as_str().to_owned(),
        }
    }
}

impl ContactStore {
    /// Creates a contact. With a `request_id`, a retry returns the contact the first call created.
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        profile: Profile,
        identities: Vec<ChannelIdentity>,
        request_id: Option<Uuid>,
    ) -> Result<Contact, ApiError> {
        let key = request_id.map(CreationKey::Request);
        let (contact, _) = self
            .create_keyed(workspace, profile, identities, key)
            .await?;
        Ok(contact)
    }

    /// Creates a contact, or returns the one an earlier call with the same `key` created; says
    /// whether this call created it.
    pub(super) async fn create_keyed(
        &self,
        workspace: WorkspaceId,
        profile: Profile,
        identities: Vec<ChannelIdentity>,
        key: Option<CreationKey>,
    ) -> Result<(Contact, bool), ApiError> {
        if let Some(key) = &key
            && let Some(existing) = self.created_with(workspace, key).await?
        {
            return Ok((existing, false));
        }
        let contact = Contact::new(workspace, profile, identities, self.clock.now_stored());
        let mut tx = self.db.pool().begin().await?;
        match self.insert(&mut tx, &contact, key.as_ref()).await {
            Ok(()) => {}
            // A concurrent call with the same key won the race: answer as it did.
            Err(InsertError::KeyReplayed) => {
                drop(tx);
                let key = key.expect("only a key can be replayed");
                let existing = self
                    .created_with(workspace, &key)
                    .await?
                    .ok_or_else(|| ApiError::Internal("replayed creation vanished".into()))?;
                return Ok((existing, false));
            }
            Err(InsertError::Api(error)) => return Err(error),
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
        Ok((contact, true))
    }

    /// Inserts a new contact's rows: the contact (its profile with it: the row is written once),
    /// its tags, its identities.
    pub(super) async fn insert(
        &self,
        conn: &mut AnyConnection,
        contact: &Contact,
        key: Option<&CreationKey>,
    ) -> Result<(), InsertError> {
        let (request_id, external_id) = match key {
            Some(CreationKey::Request(id)) => (Some(id.to_string()), None),
            Some(CreationKey::External(id)) => (None, Some(id.as_str().to_owned())),
            None => (None, None),
        };
        let inserted = ProfileValues::of(contact)
            .bind(
                sqlx::query(
                    "INSERT INTO contacts (workspace_id, contact_id, request_id, external_id,
                         created_at, first_name, last_name, email, phone, language, custom_fields,
                         tags, status, merged_into, updated_at, search_name)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                         $16)",
                )
                .bind(contact.workspace.to_string())
                .bind(contact.id.to_string())
                .bind(request_id)
                .bind(external_id)
                .bind(to_micros(contact.created_at)),
            )
            .execute(&mut *conn)
            .await;
        match inserted {
            // Contact ids are fresh UUIDs: only the key's unique index can refuse the row.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                return Err(InsertError::KeyReplayed);
            }
            other => {
                other.map_err(ApiError::from)?;
            }
        }
        self.insert_tags(conn, contact).await?;
        for identity in &contact.identities {
            self.attach_identity(conn, contact.workspace, contact.id, identity)
                .await?;
        }
        Ok(())
    }

    /// The contact an earlier call with `key` created, if any.
    async fn created_with(
        &self,
        workspace: WorkspaceId,
        key: &CreationKey,
    ) -> Result<Option<Contact>, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        let sql = format!(
            "SELECT contact_id FROM contacts WHERE workspace_id = $1 AND {} = $2",
            key.column()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(key.value())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get(0)?;
        let id = Uuid::parse_str(&id).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.load(&mut conn, workspace, ContactId::from_uuid(id), false)
            .await
            .map(Some)
    }

    /// One contact.
    pub async fn get(&self, workspace: WorkspaceId, id: ContactId) -> Result<Contact, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.load(&mut conn, workspace, id, false).await
    }

    /// The contacts of `ids` that the workspace has, each once, in the order of their first place
    /// in `ids`; the others are left out.
    pub async fn get_many(
        &self,
        workspace: WorkspaceId,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, ApiError> {
        let mut wanted: Vec<ContactId> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        wanted.extend(ids.iter().filter(|id| seen.insert(**id)));
        let mut found: HashMap<ContactId, Contact> = HashMap::with_capacity(wanted.len());
        let mut conn = self.db.pool().acquire().await?;
        // The workspace is bound besides each chunk's ids.
        for chunk in wanted.chunks(self.db.backend().max_binds() - 1) {
            let sql = format!(
                "SELECT {} FROM contacts WHERE workspace_id = $1 AND contact_id IN ({})",
                rows::CONTACT_COLUMNS,
                (0..chunk.len())
                    .map(|i| format!("${}", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let mut contacts = query
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| rows::contact_from_row(workspace, row))
                .collect::<Result<Vec<_>, _>>()?;
            self.fill_identities(&mut conn, workspace, &mut contacts)
                .await?;
            found.extend(contacts.into_iter().map(|contact| (contact.id, contact)));
        }
        Ok(wanted.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Changes the named profile fields. A merged contact can't be changed.
    pub async fn update(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        changes: Profile,
        fields: &[ProfileField],
    ) -> Result<Contact, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut contact = self.load(&mut tx, workspace, id, true).await?;
        if let Some(into) = contact.merged_into() {
            return Err(ContactError::Merged { contact: id, into }.into());
        }
        contact.profile.apply(changes, fields);
        contact.updated_at = self.clock.now_stored();
        self.save_profile(&mut tx, &contact).await?;
        self.record(
            &mut tx,
            workspace,
            id,
            ContactChange::Updated(contact.clone()),
        )
        .await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(contact)
    }

    /// Deletes a contact and frees its identities.
    pub async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        self.load(&mut tx, workspace, id, true).await?;
        for table in ["contact_identities", "contact_tags", "contacts"] {
            let sql = format!("DELETE FROM {table} WHERE workspace_id = $1 AND contact_id = $2");
            sqlx::query(AssertSqlSafe(sql))
                .bind(workspace.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        self.record(&mut tx, workspace, id, ContactChange::Deleted)
            .await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(())
    }

    /// A page of contacts, newest first, after the contact `after`.
    pub async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &ContactFilter,
        page_size: u32,
        after: Option<ContactId>,
    ) -> Result<ContactPage, ApiError> {
        let mut binds: Vec<String> = vec![workspace.to_string()];
        let mut conditions = vec!["workspace_id = $1".to_owned()];
        let mut bind = |value: String, condition: &dyn Fn(usize) -> String| {
            binds.push(value);
            conditions.push(condition(binds.len()));
        };
        if let Some(after) = after {
            bind(after.to_string(), &|n| format!("contact_id < ${n}"));
        }
        if !filter.name.is_empty() {
            let pattern = format!("%{}%", escape_like(&filter.name.to_lowercase()));
            bind(pattern, &|n| format!("search_name LIKE ${n} ESCAPE '\\'"));
        }
        if !filter.email.is_empty() {
            bind(filter.email.clone(), &|n| format!("email = ${n}"));
        }
        if !filter.phone.is_empty() {
            bind(filter.phone.clone(), &|n| format!("phone = ${n}"));
        }
        if !filter.tag.is_empty() {
            bind(filter.tag.clone(), &|n| {
                format!(
                    "contact_id IN (SELECT contact_id FROM contact_tags \
                     WHERE workspace_id = $1 AND tag = ${n})"
                )
            });
        }
        let sql = format!(
            "SELECT {} FROM contacts WHERE {} ORDER BY contact_id DESC LIMIT {}",
            rows::CONTACT_COLUMNS,
            conditions.join(" AND "),
            page_size + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let mut conn = self.db.pool().acquire().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        let mut contacts = rows
            .iter()
            .map(|row| rows::contact_from_row(workspace, row))
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if contacts.len() > page_size as usize {
            contacts.truncate(page_size as usize);
            contacts.last().map(|c| c.id)
        } else {
            None
        };
        self.fill_identities(&mut conn, workspace, &mut contacts)
            .await?;
        Ok(ContactPage {
            contacts,
            next_after,
        })
    }

    /// Loads the identities of many contacts in one query.
    async fn fill_identities(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contacts: &mut [Contact],
    ) -> Result<(), ApiError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> =
            (0..contacts.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT contact_id, channel_type, channel_id, external_id FROM contact_identities
             WHERE workspace_id = $1 AND contact_id IN ({})
             ORDER BY created_at, channel_type, channel_id, external_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
        for contact in contacts.iter() {
            query = query.bind(contact.id.to_string());
        }
        let mut by_contact: HashMap<String, Vec<ChannelIdentity>> = HashMap::new();
        for row in query.fetch_all(&mut *conn).await? {
            let owner: String = row.try_get("contact_id")?;
            by_contact
                .entry(owner)
                .or_default()
                .push(rows::identity_from_row(&row)?);
        }
        for contact in contacts.iter_mut() {
            contact.identities = by_contact
                .remove(&contact.id.to_string())
                .unwrap_or_default();
        }
        Ok(())
    }
}

/// Why inserting a contact failed.
pub(super) enum InsertError {
    /// Another call with the same creation key created the contact first.
    KeyReplayed,
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for InsertError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

/// Escapes LIKE's wildcards so a filter matches its text literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
