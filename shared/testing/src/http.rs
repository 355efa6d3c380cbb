//! A plain HTTP client for the HTTP/JSON routes: JSON in, status and JSON out, over HTTP/1.1 or
//! HTTP/2 (prior knowledge, as a backend calls), with or without a token. Nothing of gRPC.

use std::net::SocketAddr;

use bytes::Bytes;
pub use http::Method;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Which HTTP the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// A client of one server, keeping its connection between calls (HTTP/2: one connection).
#[derive(Debug, Clone)]
pub struct JsonClient {
    addr: SocketAddr,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer: the HTTP status, its content type and the body read as JSON.
#[derive(Debug)]
pub struct JsonAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub json: serde_json::Value,
}

impl JsonAnswer {
    /// Asserts the answer is a google.rpc.Status with `code`, under the HTTP status the
    /// google.rpc.Code table gives it.
    #[track_caller]
    pub fn assert_error(&self, code: tonic::Code) {
        assert_eq!(self.json["code"], code as i32, "{:?}", self.json);
        assert!(self.json["message"].is_string(), "{:?}", self.json);
        assert!(self.json["details"].is_array(), "{:?}", self.json);
        let expected = match code {
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange => 400,
            tonic::Code::Unauthenticated => 401,
            tonic::Code::PermissionDenied => 403,
            tonic::Code::NotFound => 404,
            tonic::Code::AlreadyExists | tonic::Code::Aborted => 409,
            tonic::Code::ResourceExhausted => 429,
            tonic::Code::Cancelled => 499,
            tonic::Code::Unimplemented => 501,
            tonic::Code::Unavailable => 503,
            tonic::Code::DeadlineExceeded => 504,
            tonic::Code::Ok => 200,
            tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::DataLoss => 500,
        };
        assert_eq!(self.status, expected, "{code:?}: {:?}", self.json);
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
    }

    /// The `google.rpc.BadRequest` field violations of an error answer, by field name.
    pub fn bad_request_fields(&self) -> Vec<String> {
        self.details("type.googleapis.com/google.rpc.BadRequest")
            .iter()
            .flat_map(|detail| {
                detail["fieldViolations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|violation| violation["field"].as_str().map(str::to_owned))
            .collect()
    }

    /// The details of an error answer with the given `@type`.
    pub fn details(&self, type_url: &str) -> Vec<serde_json::Value> {
        self.json["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|detail| detail["@type"] == type_url)
            .cloned()
            .collect()
    }
}

impl JsonClient {
    /// A client of the server at `addr` presenting `token` (none when `None`).
    pub fn new(addr: SocketAddr, version: HttpVersion, token: Option<String>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(version == HttpVersion::Http2)
            .build_http();
        Self {
            addr,
            token,
            client,
        }
    }

    pub async fn get(&self, path_and_query: &str) -> JsonAnswer {
        self.call(Method::GET, path_and_query, None).await
    }

    pub async fn delete(&self, path_and_query: &str) -> JsonAnswer {
        self.call(Method::DELETE, path_and_query, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> JsonAnswer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> JsonAnswer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Sends `body` as given, with `content_type` (none when `None`).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> JsonAnswer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("a valid request");
        let response = self
            .client
            .request(request)
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            panic!(
                "the answer ({status}) is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        JsonAnswer {
            status,
            content_type,
            json,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> JsonAnswer {
        match body {
            Some(body) => {
                let bytes = serde_json::to_vec(&body).expect("JSON");
                self.send_raw(method, path, Some("application/json"), &bytes)
                    .await
            }
            None => self.send_raw(method, path, None, &[]).await,
        }
    }
}
