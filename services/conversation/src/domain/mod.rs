//! The conversation lifecycle: the rules of DESIGN.md as plain Rust. No gRPC, no SQL; time comes in
//! as an argument. The store loads a conversation, asks it to change, and saves what it became.

mod conversation;
mod error;
mod history;
mod ids;
mod message;
mod settings;
mod sources;

pub use conversation::{
    Assignment, AssignmentChange, AssignmentKind, AssignmentUpdate, AutomatedReply, Conversation,
    ConversationStatus, MessageCounts, MessageEffect,
};
pub use error::ConversationError;
pub use history::{History, HistoryError, PastAssignment, PastClose, Step};
pub use ids::{ActorId, ContactId, ConversationId, ExternalId, MessageId};
pub use message::{AuthorKind, Direction, Message};
pub use settings::{AutoClose, ClosingNote, ClosingNotePolicy, WorkspaceSettings};
pub use sources::{Channel, CloseSource, OpenSource};
