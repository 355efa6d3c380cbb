//! Where a conversation happens, and what opened or closed it.

use charla_runtime::channel::ChannelType;

/// The workspace channel a conversation happens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel {
    /// The kind of channel.
    pub channel_type: ChannelType,
    /// The workspace's channel of that kind (one WhatsApp number, one Facebook page...).
    pub channel_id: String,
}

/// What opened a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenSource {
    /// A message from a contact with no open conversation.
    InboundMessage,
    /// A user, by hand.
    User,
    /// A workflow's "open conversation" step.
    Workflow,
    /// A welcome event on a channel that has them.
    WelcomeEvent,
    /// An integration through the API.
    Api,
}

/// What closed a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseSource {
    User,
    Workflow,
    /// The bot integration's mark-done parameter (Dialogflow's `RB_MARKDONE`).
    Bot,
    AiAgent,
    Api,
    /// The workspace's auto-close timer.
    AutoClose,
    /// The contact was merged into another one.
    ContactMerge,
}

impl CloseSource {
    /// Closes that charla makes by itself: exempt from the closing-note policy, and not for
    /// callers to claim.
    pub fn is_automatic(&self) -> bool {
        matches!(self, Self::AutoClose | Self::ContactMerge)
    }
}

macro_rules! named {
    ($type:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $type {
            /// A stable name, for storage.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// The value stored under `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

named!(OpenSource {
    InboundMessage => "inbound_message",
    User => "user",
    Workflow => "workflow",
    WelcomeEvent => "welcome_event",
    Api => "api",
});

named!(CloseSource {
    User => "user",
    Workflow => "workflow",
    Bot => "bot",
    AiAgent => "ai_agent",
    Api => "api",
    AutoClose => "auto_close",
    ContactMerge => "contact_merge",
});

pub(crate) use named;
