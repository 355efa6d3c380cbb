//! The contact service through real gRPC, on an ephemeral port, on SQLite and on PostgreSQL.

mod batch_get;
mod browser;
mod chromium;
mod contacts;
mod fair_share;
mod helpers;
mod hostile_input;
mod http_json;
mod identities;
mod import;
mod merge;
mod partitions;
mod platform;
mod prometheus;
mod resolve;
mod stream;
mod tls;
mod validation;
