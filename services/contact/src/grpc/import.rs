//! ImportContacts: one result per row, each row committed on its own, until the stream ends or
//! the import must answer early (shutdown, deadline, a full answer) with the rows it handled.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::auth::{Role, authorize};
use charla_runtime::error::to_rpc_status;
use charla_runtime::import::{ImportRows, Next};
use charla_runtime::workspace::WorkspaceId;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{parse_identities, parse_profile};
use crate::domain::ExternalId;
use crate::store::{ContactStore, ImportOutcome};

/// Serves one ImportContacts call.
pub async fn import_contacts(
    store: &ContactStore,
    request: Request<Streaming<pb::ImportContactsRequest>>,
    shutdown: CancellationToken,
    request_timeout: Duration,
) -> Result<Response<pb::ImportContactsResponse>, Status> {
    let workspace = authorize(&request, Role::Admin)?;
    let (metadata, _, rows) = request.into_parts();
    let mut rows = ImportRows::new(&metadata, rows, shutdown, request_timeout);
    let mut response = pb::ImportContactsResponse::default();
    loop {
        let item = match rows.next().await? {
            Next::Row(item) => item,
            Next::End => break,
            Next::Stop(_) => {
                response.stopped_early = true;
                break;
            }
        };
        let mut result = pb::ImportContactResult {
            row: i32::try_from(response.results.len()).unwrap_or(i32::MAX),
            external_id: item.external_id.clone(),
            ..Default::default()
        };
        match import_row(store, workspace, item).await {
            Ok(ImportOutcome::Imported(contact)) => {
                response.created_count += 1;
                result.contact_id = contact.id.to_string();
                result.set_outcome(pb::ImportOutcome::Imported);
            }
            Ok(ImportOutcome::Unchanged(contact)) => {
                response.unchanged_count += 1;
                result.contact_id = contact.id.to_string();
                result.set_outcome(pb::ImportOutcome::Unchanged);
            }
            Err(error) => {
                response.failed_count += 1;
                result.error = Some(to_rpc_status(error));
                result.set_outcome(pb::ImportOutcome::Refused);
            }
        }
        rows.answered(result.encoded_len());
        response.results.push(result);
    }
    Ok(Response::new(response))
}

/// Checks one row and imports it.
async fn import_row(
    store: &ContactStore,
    workspace: WorkspaceId,
    item: pb::ImportContactsRequest,
) -> Result<ImportOutcome, ApiError> {
    let external_id =
        ExternalId::parse(&item.external_id).map_err(|e| ApiError::invalid("external_id", e))?;
    let contact = item
        .contact
        .ok_or_else(|| ApiError::invalid("contact", "is required"))?;
    let profile = parse_profile("contact", &contact)?;
    let identities = parse_identities("contact.identities", &contact.identities)?;
    store
        .import(workspace, external_id, profile, identities)
        .await
}
