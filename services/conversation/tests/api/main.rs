//! The conversation service through real gRPC, beside a real contact service, on SQLite and on
//! PostgreSQL.

mod auto_close;
mod closing;
mod contacts;
mod helpers;
mod hostile_input;
mod http_json;
mod import;
mod merge;
mod messages;
mod opening;
mod reads;
mod replicas;
mod stream;
mod test_clock;
mod tls;
mod validation;
