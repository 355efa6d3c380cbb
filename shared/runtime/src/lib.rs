//! The shared service runtime: every charla service boots through this crate, so configuration,
//! telemetry, the gRPC server, the database, errors and the event log work the same in all of them.

pub mod admin;
pub mod allocator;
pub mod app;
pub mod applied;
pub mod auth;
pub mod channel;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod cors;
pub mod db;
pub mod error;
pub mod event_log;
pub mod fair_share;
pub mod http_json;
pub mod import;
pub mod lease;
pub mod malformed;
pub mod peers;
pub mod planner_statistics;
pub mod rpc_log;
pub mod server;
pub mod service_metrics;
pub mod stream;
pub mod telemetry;
pub mod test_clock;
pub mod tls;
pub mod validate;
pub mod workspace;

pub use error::ApiError;
