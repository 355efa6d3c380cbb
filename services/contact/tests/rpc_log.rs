//! The per-call log line, in a test binary of its own: its tests capture logs with a scoped
//! subscriber, and the api binary's hundred other tests, logging meanwhile with none, left the
//! shared callsite interest stale now and then (a line missing under the full suite's load).

#[allow(dead_code)] // the helpers serve the api binary; this one uses a few
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/rpc_log.rs"]
mod rpc_log;
