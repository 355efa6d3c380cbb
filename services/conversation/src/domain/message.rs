//! Message metadata: who wrote what, when, in which direction. Never the body.

use std::time::SystemTime;

use super::ids::{ActorId, MessageId};
use super::sources::named;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the contact.
    Inbound,
    /// To the contact.
    Outbound,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorKind {
    Contact,
    /// A human user of the workspace: the only author whose messages are responses.
    User,
    Bot,
    AiAgent,
    Workflow,
    Broadcast,
    Api,
    /// A message sent outside charla (from the phone app, say) and echoed back by the channel.
    Echo,
}

impl AuthorKind {
    /// A human user's message: sets first response, restarts auto-close.
    pub fn is_human_user(&self) -> bool {
        matches!(self, Self::User)
    }

    /// An automation that talks with the contact on the workspace's behalf: a bot, an AI agent or
    /// a workflow. Broadcasts (campaigns to many contacts), API messages (any integration) and
    /// echoes (a human on the channel's own app) are not.
    pub fn is_automation(&self) -> bool {
        matches!(self, Self::Bot | Self::AiAgent | Self::Workflow)
    }

    /// Whether this author writes in `direction` (contacts write inbound, everyone else outbound).
    pub fn writes(&self, direction: Direction) -> bool {
        match self {
            Self::Contact => direction == Direction::Inbound,
            _ => direction == Direction::Outbound,
        }
    }
}

named!(Direction {
    Inbound => "inbound",
    Outbound => "outbound",
});

named!(AuthorKind {
    Contact => "contact",
    User => "user",
    Bot => "bot",
    AiAgent => "ai_agent",
    Workflow => "workflow",
    Broadcast => "broadcast",
    Api => "api",
    Echo => "echo",
});

/// One message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub author_kind: AuthorKind,
    /// The user, bot, workflow... that wrote it; none for contacts and echoes.
    pub author_id: Option<ActorId>,
    /// When the channel says it was sent (information only: rules run on charla's clock).
    pub sent_at: Option<SystemTime>,
}
