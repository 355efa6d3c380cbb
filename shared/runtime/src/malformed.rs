//! Requests tonic could not read, answered as the caller's mistake. tonic reports a request body
//! that is not a gRPC frame of a protobuf message as INTERNAL ("failed to decode Protobuf
//! message", a bad compression flag, a body cut short) and a message over the size limit as
//! OUT_OF_RANGE, before any handler runs; both are the caller's doing, so this layer, wrapped
//! around every service's routes, turns them into INVALID_ARGUMENT (naming the field when tonic
//! says which) and RESOURCE_EXHAUSTED. Unary, server-streaming and client-streaming calls all
//! answer such errors before their first response message (a trailers-only response, the status
//! in the headers), which is where this looks; charla has no bidirectional calls.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// A tower layer that reclassifies tonic's request-decoding errors (see the module comment).
#[derive(Debug, Clone, Copy, Default)]
pub struct MalformedRequestLayer;

impl<S> tower::Layer<S> for MalformedRequestLayer {
    type Service = MalformedRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MalformedRequests { inner }
    }
}

/// The service [`MalformedRequestLayer`] wraps around the routes.
#[derive(Debug, Clone)]
pub struct MalformedRequests<S> {
    inner: S,
}

type Response = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for MalformedRequests<S>
where
    S: tower::Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map(rewrite) })
    }
}

/// The response with a decoding error's status replaced; any other response as it was.
fn rewrite(mut response: Response) -> Response {
    // tonic keeps the Status of an error response in its extensions, beside the headers.
    let Some(status) = response.extensions().get::<tonic::Status>() else {
        return response;
    };
    let Some(replacement) = reclassify(status.code(), status.message()) else {
        return response;
    };
    let headers = response.headers_mut();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if replacement.add_header(headers).is_err() {
        // Unreachable with the ASCII-only text built here; the original answer still stands.
        tracing::warn!("could not rewrite a request-decoding status");
    }
    response.extensions_mut().insert(replacement);
    response
}

/// What tonic says, before the details, when a request body can't be read.
const UNREADABLE: [&str; 4] = [
    "failed to decode Protobuf message",
    "protocol error: received message with",
    "Unexpected EOF decoding stream",
    "Error decompressing",
];
/// What tonic says when a request message is over the size limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// The status a decoding error should have been, or `None` for any other status (a handler's
/// own INTERNAL always says just "internal error", so it never matches).
fn reclassify(code: Code, message: &str) -> Option<tonic::Status> {
    match code {
        Code::Internal if UNREADABLE.iter().any(|prefix| message.starts_with(prefix)) => {
            let message = format!("the request is not a readable message: {message}");
            Some(match failed_field(&message) {
                Some((field, description)) => tonic::Status::with_error_details(
                    Code::InvalidArgument,
                    message.clone(),
                    ErrorDetails::with_bad_request_violation(field, description),
                ),
                None => tonic::Status::invalid_argument(message),
            })
        }
        Code::OutOfRange if message.starts_with(TOO_LARGE) => Some(tonic::Status::new(
            Code::ResourceExhausted,
            format!("the request message is too large: {message}"),
        )),
        _ => None,
    }
}

/// The field path and reason of a prost decode error. prost writes the fields it was in,
/// innermost first, as `Message.field: ` before the reason: "…message: Contact.first_name:
/// CreateContactRequest.contact: invalid string value: data is not UTF-8 encoded" names
/// `contact.first_name`.
fn failed_field(message: &str) -> Option<(String, String)> {
    let (_, mut rest) = message.split_once("failed to decode Protobuf message: ")?;
    let mut fields = Vec::new();
    while let Some((head, tail)) = rest.split_once(": ") {
        let Some((owner, field)) = head.split_once('.') else {
            break;
        };
        let is_name = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !is_name(owner) || !is_name(field) {
            break;
        }
        fields.push(field);
        rest = tail;
    }
    if fields.is_empty() {
        return None;
    }
    fields.reverse();
    Some((fields.join("."), rest.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_bodies_are_invalid_arguments_naming_the_field_when_known() {
        let status = reclassify(
            Code::Internal,
            "failed to decode Protobuf message: Contact.first_name: CreateContactRequest.contact: \
             invalid string value: data is not UTF-8 encoded",
        )
        .expect("reclassified");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("bad request").field_violations[0];
        assert_eq!(violation.field, "contact.first_name");
        assert_eq!(
            violation.description,
            "invalid string value: data is not UTF-8 encoded"
        );

        let status = reclassify(
            Code::Internal,
            "failed to decode Protobuf message: invalid wire type value: 7",
        )
        .expect("reclassified");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.get_error_details().bad_request().is_none());

        for message in [
            "protocol error: received message with invalid compression flag: 9 (valid flags are 0 \
             and 1), while sending request",
            "Unexpected EOF decoding stream.",
        ] {
            let status = reclassify(Code::Internal, message).expect("reclassified");
            assert_eq!(status.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn oversize_messages_are_resource_exhausted() {
        let status = reclassify(
            Code::OutOfRange,
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 \
             bytes",
        )
        .expect("reclassified");
        assert_eq!(status.code(), Code::ResourceExhausted);
    }

    #[test]
    fn every_other_status_stays() {
        assert!(reclassify(Code::Internal, "internal error").is_none());
        assert!(reclassify(Code::OutOfRange, "page past the end").is_none());
        assert!(
            reclassify(
                Code::NotFound,
                "failed to decode Protobuf message: not this one"
            )
            .is_none()
        );
    }
}
