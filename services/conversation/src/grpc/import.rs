//! ImportConversations: one result per item, items written a batch per transaction (each item
//! answered as if written on its own), until the stream ends or the import must answer early
//! (shutdown, deadline, a full answer) with the items it handled; and turning an item into a
//! checked `History`, naming the field of anything wrong.

use std::collections::HashSet;
use std::time::Duration;

use charla_proto::charla::contact::v1::PartitionCursor;
use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::auth::{Role, authorize};
use charla_runtime::error::to_rpc_status;
use charla_runtime::import::{ImportRows, Next};
use charla_runtime::validate::{required_id, text};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{
    parse_actor, parse_author_kind, parse_channel, parse_close_source, parse_closing_note,
    parse_direction, parse_message_id, parse_open_source, parse_time,
};
use crate::contacts::ContactDirectory;
use crate::domain::{ContactId, ExternalId, History, Message, PastAssignment, PastClose};
use crate::store::{ConversationStore, ImportOutcome};

/// Serves one ImportConversations call.
pub async fn import_conversations(
    store: &ConversationStore,
    contacts: &ContactDirectory,
    request: Request<Streaming<pb::ImportConversationsRequest>>,
    shutdown: CancellationToken,
    request_timeout: Duration,
) -> Result<Response<pb::ImportConversationsResponse>, Status> {
    let workspace = authorize(&request, Role::Admin)?;
    let (metadata, _, items) = request.into_parts();
    let mut items = ImportRows::new(&metadata, items, shutdown, request_timeout);
    let mut response = pb::ImportConversationsResponse::default();
    let mut known_contacts = HashSet::new();
    let mut finished = false;
    while !finished {
        // Read a batch, answering unreadable items at once; then write the batch's histories.
        let mut batch: Vec<(pb::ImportConversationResult, Result<History, ApiError>)> = Vec::new();
        while batch.len() < BATCH {
            let next = if batch.is_empty() {
                items.next().await?
            } else {
                // Items that keep coming join the batch; a client that pauses gets what it sent
                // written now. (Reading the stream is cancel safe: an item not yet whole stays
                // buffered for the next read.)
                match tokio::time::timeout(GATHER_WAIT, items.next()).await {
                    Ok(next) => next?,
                    Err(_paused) => break,
                }
            };
            let next = match next {
                Next::Row(next) => next,
                Next::End => {
                    finished = true;
                    break;
                }
                Next::Stop(_) => {
                    response.stopped_early = true;
                    finished = true;
                    break;
                }
            };
            let result = pb::ImportConversationResult {
                item: i32::try_from(response.results.len() + batch.len()).unwrap_or(i32::MAX),
                external_id: next
                    .conversation
                    .as_ref()
                    .map(|c| c.external_id.clone())
                    .unwrap_or_default(),
                ..Default::default()
            };
            batch.push((result, parse_history(next.conversation.as_ref())));
        }
        let histories: Vec<History> = batch
            .iter()
            .filter_map(|(_, history)| history.as_ref().ok().cloned())
            .collect();
        let mut imported = store
            .import_batch(workspace, &histories, contacts, &mut known_contacts)
            .await
            .into_iter();
        for (mut result, history) in batch {
            let outcome = match history {
                Ok(_) => imported.next().expect("an outcome per history"),
                Err(error) => Err(error),
            };
            answer(store, workspace, &mut result, &mut response, outcome).await?;
            items.answered(result.encoded_len());
            response.results.push(result);
        }
    }
    Ok(Response::new(response))
}

/// Items written per transaction at most (see `ConversationStore::import_batch`): enough to
/// share a commit among many, few enough to keep a transaction short.
const BATCH: usize = 100;
/// How long a batch waits for the stream's next item before it is written without it.
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Fills in `result` with what became of its item, and counts it.
async fn answer(
    store: &ConversationStore,
    workspace: charla_runtime::workspace::WorkspaceId,
    result: &mut pb::ImportConversationResult,
    response: &mut pb::ImportConversationsResponse,
    outcome: Result<ImportOutcome, ApiError>,
) -> Result<(), Status> {
    match outcome {
        Ok(ImportOutcome::Imported(id, last)) => {
            response.imported_count += 1;
            result.conversation_id = id.to_string();
            result.set_outcome(pb::ImportOutcome::Imported);
            result.event_position = Some(PartitionCursor {
                partition: last.partition,
                sequence: last.sequence,
            });
        }
        Ok(ImportOutcome::Unchanged(id)) => {
            response.unchanged_count += 1;
            result.conversation_id = id.to_string();
            result.set_outcome(pb::ImportOutcome::Unchanged);
            result.event_position =
                store
                    .latest_position(workspace, id)
                    .await?
                    .map(|(partition, sequence)| PartitionCursor {
                        partition,
                        sequence,
                    });
        }
        Err(error) => {
            response.refused_count += 1;
            result.error = Some(to_rpc_status(error));
            result.set_outcome(pb::ImportOutcome::Refused);
        }
    }
    Ok(())
}

const ITEM: &str = "conversation";

fn at(field: &str) -> String {
    format!("{ITEM}.{field}")
}

fn required_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<std::time::SystemTime, ApiError> {
    parse_time(field, value)?.ok_or_else(|| ApiError::invalid(field, "is required"))
}

/// The history an import item describes.
fn parse_history(item: Option<&pb::HistoricalConversation>) -> Result<History, ApiError> {
    let item = item.ok_or_else(|| ApiError::invalid(ITEM, "is required"))?;
    let external_id = ExternalId::parse(text(&at("external_id"), &item.external_id)?)
        .map_err(|e| ApiError::invalid(at("external_id"), e))?;
    let contact = ContactId::from_uuid(required_id(&at("contact_id"), &item.contact_id)?);
    let channel = parse_channel(&at("channel"), item.channel.as_ref())?;
    let opened_at = required_time(&at("opened_at"), item.opened_at.as_ref())?;
    let opened_by = parse_open_source(&at("opened_by"), item.opened_by)?;
    let opened_by_id = parse_actor(&at("opened_by_id"), &item.opened_by_id)?;

    let mut messages = Vec::with_capacity(item.messages.len());
    for (index, message) in item.messages.iter().enumerate() {
        let field = |name: &str| format!("{ITEM}.messages[{index}].{name}");
        let direction = parse_direction(&field("direction"), message.direction)?;
        let author_kind = parse_author_kind(&field("author_kind"), message.author_kind)?;
        if !author_kind.writes(direction) {
            return Err(ApiError::invalid(
                field("author_kind"),
                "contacts write inbound messages; every other author writes outbound ones",
            ));
        }
        let sent_at = required_time(&field("sent_at"), message.sent_at.as_ref())?;
        messages.push((
            Message {
                id: parse_message_id(&field("message_id"), &message.message_id)?,
                direction,
                author_kind,
                author_id: parse_actor(&field("author_id"), &message.author_id)?,
                sent_at: Some(sent_at),
            },
            sent_at,
        ));
    }

    let mut assignments = Vec::with_capacity(item.assignments.len());
    for (index, assignment) in item.assignments.iter().enumerate() {
        let field = |name: &str| format!("{ITEM}.assignments[{index}].{name}");
        assignments.push(PastAssignment {
            at: required_time(&field("assigned_at"), assignment.assigned_at.as_ref())?,
            assignee: parse_actor(&field("assignee_user_id"), &assignment.assignee_user_id)?,
            team: parse_actor(&field("team_id"), &assignment.team_id)?,
            actor: parse_actor(&field("actor_id"), &assignment.actor_id)?,
        });
    }

    let close =
        match (item.closed_at.as_ref(), item.closed_by) {
            (None, 0) => {
                if !item.closing_category.is_empty() || !item.closing_summary.is_empty() {
                    return Err(ApiError::invalid(
                        at("closed_at"),
                        "is required when a closing note is given",
                    ));
                }
                None
            }
            (None, _) => {
                return Err(ApiError::invalid(
                    at("closed_at"),
                    "is required when closed_by is set",
                ));
            }
            (Some(closed_at), closed_by) => {
                let note = parse_closing_note(&item.closing_category, &item.closing_summary)
                    .map_err(|e| match e {
                        ApiError::InvalidArgument { field, description } => {
                            let field = if field == "category" {
                                "closing_category"
                            } else {
                                "closing_summary"
                            };
                            ApiError::invalid(at(field), description)
                        }
                        other => other,
                    })?;
                Some(PastClose {
                    at: required_time(&at("closed_at"), Some(closed_at))?,
                    by: parse_close_source(&at("closed_by"), closed_by)?,
                    by_id: parse_actor(&at("closed_by_id"), &item.closed_by_id)?,
                    note,
                })
            }
        };

    Ok(History {
        external_id,
        contact,
        channel,
        opened_at,
        opened_by,
        opened_by_id,
        messages,
        assignments,
        close,
    })
}
