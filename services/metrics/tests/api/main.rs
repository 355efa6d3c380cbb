//! The metrics service through real gRPC, fed by real contact and conversation services, on
//! SQLite and on PostgreSQL.

mod automation;
mod batches;
mod business_time;
mod csv_export;
mod export;
mod health;
mod helpers;
mod hostile_input;
mod http_json;
mod read_your_writes;
mod recontact;
mod scenario;
mod sla;
mod store;
mod tls;
mod validation;
mod watch;
