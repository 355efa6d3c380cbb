//! The one error type a charla handler returns, and its single mapping to `tonic::Status` with
//! google.rpc details: a caller always learns the code, the field or resource at fault, and why.

use std::collections::HashMap;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every charla error.
pub const ERROR_DOMAIN: &str = "charla";

/// What went wrong with a call, in terms a client can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A request field is missing or malformed: INVALID_ARGUMENT with a BadRequest field violation.
    #[error("{field}: {description}")]
    InvalidArgument { field: String, description: String },

    /// The call carries no usable credentials: UNAUTHENTICATED, with ErrorInfo saying why
    /// (`reason`: a machine-readable word such as `TOKEN_EXPIRED`).
    #[error("{message}")]
    Unauthenticated {
        reason: &'static str,
        message: String,
    },

    /// The caller's role may not make this call: PERMISSION_DENIED with ErrorInfo naming the role
    /// needed.
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },

    /// The caller (or its workspace) is over a limit: RESOURCE_EXHAUSTED with ErrorInfo naming it.
    #[error("{message}")]
    ResourceExhausted {
        reason: &'static str,
        message: String,
    },

    /// The resource does not exist in the caller's workspace: NOT_FOUND with ResourceInfo.
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },

    /// The resource exists already: ALREADY_EXISTS with ErrorInfo naming what collides.
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },

    /// The system is not in the state the call needs: FAILED_PRECONDITION with ErrorInfo.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },

    /// The call's deadline came before what it waits for (another service's progress, say):
    /// DEADLINE_EXCEEDED with ErrorInfo saying how far it got.
    #[error("{message}")]
    DeadlineExceeded {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },

    /// A dependency (the database, a peer service) can't be reached now; retrying may succeed.
    #[error("{0}")]
    Unavailable(String),

    /// A bug or an unexpected failure on charla's side; the details are logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A malformed or missing field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            description: description.into(),
        }
    }

    /// A missing resource.
    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    /// A state the call can't proceed in, with a machine-readable reason.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    /// A collision with an existing resource, with a machine-readable reason.
    pub fn already_exists(reason: &'static str, message: impl Into<String>) -> Self {
        Self::AlreadyExists {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    /// Adds a key to the ErrorInfo metadata (for example the id of the resource in the way).
    pub fn with_metadata(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if let Self::AlreadyExists { metadata, .. }
        | Self::FailedPrecondition { metadata, .. }
        | Self::DeadlineExceeded { metadata, .. }
        | Self::PermissionDenied { metadata, .. } = &mut self
        {
            metadata.push((key, value.into()));
        }
        self
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// The longest field path an error names, in characters.
const MAX_FIELD_CHARS: usize = 128;
/// The longest description, message, id or metadata value an error carries, in characters.
const MAX_TEXT_CHARS: usize = 256;

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
}

impl ApiError {
    /// The error with every text it carries cut short. Field paths, descriptions and ids may quote
    /// what the caller sent (a megabyte, say); the status travels in HTTP/2 trailers, which a
    /// client refuses past a few kilobytes, so a long quote would hide the error behind
    /// RESOURCE_EXHAUSTED. Done here, on the way out, so no call site has to remember.
    fn bounded(mut self) -> Self {
        match &mut self {
            Self::InvalidArgument { field, description } => {
                shorten(field, MAX_FIELD_CHARS);
                shorten(description, MAX_TEXT_CHARS);
            }
            Self::NotFound { id, .. } => shorten(id, MAX_TEXT_CHARS),
            Self::AlreadyExists {
                message, metadata, ..
            }
            | Self::FailedPrecondition {
                message, metadata, ..
            }
            | Self::DeadlineExceeded {
                message, metadata, ..
            }
            | Self::PermissionDenied {
                message, metadata, ..
            } => {
                shorten(message, MAX_TEXT_CHARS);
                for (_, value) in metadata {
                    shorten(value, MAX_TEXT_CHARS);
                }
            }
            Self::Unauthenticated { message, .. }
            | Self::ResourceExhausted { message, .. }
            | Self::Unavailable(message) => {
                shorten(message, MAX_TEXT_CHARS);
            }
            Self::Internal(_) => {}
        }
        self
    }
}

fn error_info(reason: &str, metadata: &[(&'static str, String)]) -> ErrorDetails {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let error = error.bounded();
        let code = error.code();
        let message = error.to_string();
        let details = match &error {
            ApiError::InvalidArgument { field, description } => {
                ErrorDetails::with_bad_request_violation(field.clone(), description.clone())
            }
            ApiError::Unauthenticated { reason, .. }
            | ApiError::ResourceExhausted { reason, .. } => error_info(reason, &[]),
            ApiError::NotFound { resource, id } => {
                ErrorDetails::with_resource_info(*resource, id.clone(), "", message.clone())
            }
            ApiError::AlreadyExists {
                reason, metadata, ..
            }
            | ApiError::FailedPrecondition {
                reason, metadata, ..
            }
            | ApiError::DeadlineExceeded {
                reason, metadata, ..
            }
            | ApiError::PermissionDenied {
                reason, metadata, ..
            } => error_info(reason, metadata),
            ApiError::Unavailable(_) => ErrorDetails::with_retry_info(None),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                return tonic::Status::internal("internal error");
            }
        };
        tonic::Status::with_error_details(code, message, details)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(format!("database unavailable: {error}"))
            }
            other => Self::Internal(format!("database error: {other}")),
        }
    }
}

/// The google.rpc.Status that a gRPC error carries, for APIs that report an error per item
/// (imports) rather than per call.
pub fn to_rpc_status(error: ApiError) -> charla_proto::google::rpc::Status {
    use prost::Message;
    let status = tonic::Status::from(error);
    charla_proto::google::rpc::Status::decode(status.details()).unwrap_or_else(|_| {
        charla_proto::google::rpc::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Vec::new(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_argument_names_its_field_in_the_details() {
        let status = tonic::Status::from(ApiError::invalid("contact_id", "must be a UUID"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("bad request").field_violations;
        assert_eq!(violations[0].field, "contact_id");
        assert_eq!(violations[0].description, "must be a UUID");
    }

    #[test]
    fn a_per_item_status_keeps_code_message_and_details() {
        let status = to_rpc_status(ApiError::invalid("contact.email", "must contain @"));
        assert_eq!(status.code, Code::InvalidArgument as i32);
        assert_eq!(status.message, "contact.email: must contain @");
        assert_eq!(status.details.len(), 1);
    }

    #[test]
    fn a_huge_bad_value_is_quoted_only_in_part() {
        let huge = "x".repeat(1 << 20);
        let error = ApiError::invalid(
            format!("contact.custom_fields[{huge}]"),
            format!("`{huge}` is not a key"),
        );
        let status = tonic::Status::from(error);
        assert!(status.message().chars().count() <= MAX_FIELD_CHARS + MAX_TEXT_CHARS + 4);
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("bad request").field_violations[0];
        assert!(violation.field.starts_with("contact.custom_fields[xxx"));
        assert!(violation.field.ends_with('…'));
        assert_eq!(violation.description.chars().count(), MAX_TEXT_CHARS + 1);
        let not_found = tonic::Status::from(ApiError::not_found("contact", &huge));
        assert!(not_found.message().len() < 1024);
        let status =
            to_rpc_status(ApiError::precondition("R", huge.clone()).with_metadata("k", huge));
        assert!(status.message.len() < 1024);
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status = tonic::Status::from(ApiError::Internal("secret".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
