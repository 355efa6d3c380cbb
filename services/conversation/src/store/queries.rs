//! Reading conversations: one, the open one of a contact, and filtered pages.

use std::time::SystemTime;

use charla_runtime::ApiError;
use charla_runtime::channel::ChannelType;
use charla_runtime::clock::to_micros;
use charla_runtime::workspace::WorkspaceId;
use sqlx::AssertSqlSafe;

use super::{ConversationStore, rows};
use crate::domain::{ActorId, ContactId, Conversation, ConversationId};

/// Which conversations a list returns; `None` fields don't filter.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub contact: Option<ContactId>,
    /// `Some(true)` for open ones, `Some(false)` for closed ones.
    pub open: Option<bool>,
    pub assignee: Option<ActorId>,
    pub team: Option<ActorId>,
    pub channel_type: Option<ChannelType>,
    pub channel_id: Option<String>,
    pub opened_after: Option<SystemTime>,
    pub opened_before: Option<SystemTime>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    /// Newest first.
    pub conversations: Vec<Conversation>,
    /// The id to continue after, when there are more.
    pub next_after: Option<ConversationId>,
}

impl ConversationStore {
    /// One conversation.
    pub async fn get(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
    ) -> Result<Conversation, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.load(&mut conn, workspace, id, false).await
    }

    /// The contact's open conversation, if it has one.
    pub async fn get_open(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Option<Conversation>, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.open_of(&mut conn, workspace, contact, false).await
    }

    /// A page of conversations, newest first, after `after`.
    pub async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &ConversationFilter,
        page_size: u32,
        after: Option<ConversationId>,
    ) -> Result<ConversationPage, ApiError> {
        enum Value {
            Text(String),
            Number(i64),
        }
        let mut values = vec![Value::Text(workspace.to_string())];
        let mut conditions = vec!["workspace_id = $1".to_owned()];
        let mut add = |value: Value, condition: &str| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("${}", values.len())));
        };
        if let Some(after) = after {
            add(Value::Text(after.to_string()), "conversation_id < ?");
        }
        if let Some(contact) = filter.contact {
            add(Value::Text(contact.to_string()), "contact_id = ?");
        }
        if let Some(open) = filter.open {
            add(
                Value::Text(if open { "open" } else { "closed" }.into()),
                "status = ?",
            );
        }
        if let Some(assignee) = &filter.assignee {
            add(Value::Text(assignee.to_string()), "assignee_user_id = ?");
        }
        if let Some(team) = &filter.team {
            add(Value::Text(team.to_string()), "team_id = ?");
        }
        if let Some(channel_type) = filter.channel_type {
            add(
                Value::Text(channel_type.as_str().into()),
                "channel_type = ?",
            );
        }
        if let Some(channel_id) = &filter.channel_id {
            add(Value::Text(channel_id.clone()), "channel_id = ?");
        }
        if let Some(after) = filter.opened_after {
            add(Value::Number(to_micros(after)), "opened_at >= ?");
        }
        if let Some(before) = filter.opened_before {
            add(Value::Number(to_micros(before)), "opened_at < ?");
        }
        let sql = format!(
            "{} WHERE {} ORDER BY conversation_id DESC LIMIT {}",
            *rows::SELECT,
            conditions.join(" AND "),
            page_size + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in values {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Number(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut conversations = rows
            .iter()
            .map(rows::conversation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if conversations.len() > page_size as usize {
            conversations.truncate(page_size as usize);
            conversations.last().map(|c| c.id)
        } else {
            None
        };
        Ok(ConversationPage {
            conversations,
            next_after,
        })
    }
}
