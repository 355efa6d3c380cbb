//! Hostile input through real gRPC, on SQLite and on PostgreSQL: every RPC of every service (read
//! from the API's descriptors, so a new RPC is covered without touching this test) is called with
//! seeded random requests: plausible ones, ones with hostile values mixed in (NUL bytes, megabyte
//! strings, extreme numbers, times and durations past protobuf's limits), random bytes as the
//! message, and bodies that are not gRPC frames at all. No call may answer INTERNAL or UNKNOWN,
//! no server may panic, RESOURCE_EXHAUSTED only answers a message over the size limit, every
//! answer decodes with its times in protobuf's range, and no NUL byte reaches a stored text.
//! `cargo test -p charla --test hostile_input -- --nocapture` prints how many cases ran and how
//! they were answered.

mod raw;
mod requests;
mod services;

use std::collections::BTreeMap;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use charla_testing::{Backend, backend_tests};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ReflectMessage, Value};
use tonic::Code;
use tonic::transport::Channel;

use raw::Caller;
use requests::Generator;
use services::{Service, Services};

backend_tests!(every_rpc_survives_hostile_input);

/// Seeded random cases per RPC: enough to meet every kind of hostile value on every RPC, few
/// enough for a debug build to finish in seconds.
const CASES_PER_RPC: usize = 60;
/// The largest request message the servers accept (tonic's default).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on any thread of this process (the servers run in it), still reporting them.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            report(info);
        }));
    });
}

/// Every charla RPC and the servers that serve it (TestClockService where the test clock is on:
/// conversation and metrics here; the contact server, on the system clock, doesn't serve it).
fn rpcs(pool: &DescriptorPool) -> Vec<(MethodDescriptor, Service)> {
    let mut rpcs = Vec::new();
    for service in pool.services() {
        let servers: &[Service] = match service.full_name() {
            "charla.contact.v1.ContactService" => &[Service::Contact],
            "charla.conversation.v1.ConversationService" => &[Service::Conversation],
            "charla.metrics.v1.MetricsService" => &[Service::Metrics],
            "charla.conversation.v1.TestClockService" => &[Service::Conversation, Service::Metrics],
            other => {
                assert!(!other.starts_with("charla."), "{other} has no server here");
                continue;
            }
        };
        for method in service.methods() {
            for server in servers {
                rpcs.push((method.clone(), *server));
            }
        }
    }
    rpcs
}

async fn connect(services: &Services, service: Service) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", services.addr(service)))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect")
}

/// What a case sends.
enum Body {
    Plausible,
    /// A plausible request with one value made hostile.
    OneHostile,
    /// Each value hostile with this probability.
    Hostile(f64),
    RandomBytes,
    Mutated,
}

/// One case's request bodies (one, or several for a client stream).
fn bodies(generator: &mut Generator, method: &MethodDescriptor, body: &Body) -> Vec<Vec<u8>> {
    let count = if method.is_client_streaming() {
        generator.rng.usize(0..=4)
    } else {
        1
    };
    (0..count.max(1))
        .map(|_| match body {
            Body::Plausible => generator.request(&method.input(), 0.0).encode_to_vec(),
            Body::OneHostile => generator
                .request_with_one_hostile_value(&method.input())
                .encode_to_vec(),
            Body::Hostile(hostility) => generator
                .request(&method.input(), *hostility)
                .encode_to_vec(),
            Body::RandomBytes => {
                let length = generator.rng.usize(0..200);
                (0..length).map(|_| generator.rng.u8(..)).collect()
            }
            Body::Mutated => {
                let mut bytes = generator.request(&method.input(), 0.0).encode_to_vec();
                if !bytes.is_empty() {
                    let at = generator.rng.usize(..bytes.len());
                    if generator.rng.bool() {
                        bytes[at] ^= 1 << generator.rng.u8(0..8);
                    } else {
                        bytes.truncate(at);
                    }
                }
                bytes
            }
        })
        .collect()
}

/// Every Timestamp inside `message` lies in protobuf's range (years 1 to 9999).
fn times_in_range(message: &DynamicMessage) -> Result<(), String> {
    if message.descriptor().full_name() == "google.protobuf.Timestamp" {
        let seconds = message
            .get_field_by_name("seconds")
            .and_then(|v| v.as_i64())
            .unwrap_or_default();
        return if (-62_135_596_800..=253_402_300_799).contains(&seconds) {
            Ok(())
        } else {
            Err(format!("a timestamp out of range: {seconds} s"))
        };
    }
    for (_, value) in message.fields() {
        let values = match value {
            Value::List(items) => items.iter().collect(),
            other => vec![other],
        };
        for value in values {
            if let Value::Message(inner) = value {
                times_in_range(inner)?;
            }
        }
    }
    Ok(())
}

async fn every_rpc_survives_hostile_input(backend: Backend) {
    count_panics();
    let Some(services) = Services::start(backend).await else {
        return;
    };
    let started = Instant::now();
    let pool = DescriptorPool::decode(charla_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let rpcs = rpcs(&pool);
    assert!(
        rpcs.len() >= 37 + 3,
        "every RPC, the test clock's on two servers"
    );
    let channels = [
        connect(&services, Service::Contact).await,
        connect(&services, Service::Conversation).await,
        connect(&services, Service::Metrics).await,
    ];
    let channel = |service: Service| channels[service as usize].clone();

    let mut generator = Generator::new(0x000c_4a71_a000_0013);
    let workspace = uuid::Uuid::from_u128(generator.rng.u128(..));
    let mut order: Vec<usize> = (0..rpcs.len())
        .flat_map(|rpc| std::iter::repeat_n(rpc, CASES_PER_RPC))
        .collect();
    generator.rng.shuffle(&mut order);

    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    // HOSTILE_DEBUG=1 prints the answers per RPC and refused field: how to see which checks the
    // generator gets past, when tuning it.
    let debug = std::env::var("HOSTILE_DEBUG").is_ok();
    let mut per_rpc = BTreeMap::new();
    for (case, rpc) in order.iter().enumerate() {
        let (method, server) = &rpcs[*rpc];
        let body = match generator.rng.u8(..20) {
            0..=3 => Body::Plausible,
            4..=11 => Body::OneHostile,
            12..=13 => Body::Hostile(0.1),
            14..=15 => Body::Hostile(0.5),
            16..=17 => Body::RandomBytes,
            _ => Body::Mutated,
        };
        let bodies = bodies(&mut generator, method, &body);
        let oversize = bodies.iter().any(|b| b.len() > MAX_MESSAGE);
        let caller = match generator.rng.u8(..100) {
            0..=79 => Caller::Workspace(workspace),
            80..=87 => Caller::Service(workspace),
            88..=92 => Caller::Workspace(uuid::Uuid::from_u128(generator.rng.u128(..))),
            93..=96 => Caller::Nobody,
            _ => Caller::Garbage,
        };
        let result = raw::call(channel(*server), method, bodies, &caller).await;
        let code = result.as_ref().err().map_or(Code::Ok, tonic::Status::code);
        *codes.entry(format!("{code:?}")).or_default() += 1;
        if debug {
            tally_field(&mut per_rpc, method, &result);
        }
        let what = format!("case {case}: {}", method.full_name());
        match result {
            Ok(answers) => {
                for answer in answers {
                    match DynamicMessage::decode(method.output(), answer.as_slice()) {
                        Ok(message) => {
                            if let Err(error) = times_in_range(&message) {
                                failures.push(format!("{what}: {error}"));
                            }
                            generator.learn(&message);
                        }
                        Err(error) => failures.push(format!("{what}: undecodable answer: {error}")),
                    }
                }
            }
            Err(status) => {
                let bad = match status.code() {
                    Code::Internal | Code::Unknown | Code::Unavailable => true,
                    Code::ResourceExhausted => !oversize,
                    _ => false,
                };
                if bad {
                    let message: String = status.message().chars().take(300).collect();
                    failures.push(format!("{what}: {:?} {message}", status.code()));
                }
            }
        }
    }

    // Bodies that are not gRPC frames of a message: no gRPC client would send them.
    let mut raw_cases = 0;
    for (method, server) in &rpcs {
        let random: Vec<u8> = (0..generator.rng.usize(1..64))
            .map(|_| generator.rng.u8(..))
            .collect();
        let crafted = [
            // A bad compression flag.
            (vec![7, 0, 0, 0, 1, 0], true),
            // Compressed, with no grpc-encoding.
            (vec![1, 0, 0, 0, 1, 0], true),
            // A frame that promises more than the body holds.
            (vec![0, 0, 0, 0, 100, 1, 2], true),
            // Half a frame header.
            (vec![0, 0], true),
            (random, false),
        ];
        for (body, must_be_invalid) in crafted {
            raw_cases += 1;
            let code = raw::post_raw(channel(*server), method, body.clone(), workspace).await;
            *codes.entry(format!("{code:?} (raw)")).or_default() += 1;
            let bad = if must_be_invalid {
                code != Code::InvalidArgument
            } else {
                matches!(code, Code::Internal | Code::Unknown | Code::Unavailable)
            };
            if bad {
                failures.push(format!("raw {body:?} to {}: {code:?}", method.full_name()));
            }
        }
    }

    if !per_rpc.is_empty() {
        eprintln!("{per_rpc:#?}");
    }
    if backend == Backend::Sqlite {
        for database in &services.databases {
            failures.extend(stored_nuls(database).await);
        }
    }
    services.stop().await;
    let cases = order.len() + raw_cases;
    eprintln!(
        "hostile input on {backend:?}: {cases} cases over {} RPC endpoints in {:.1?}; answers: {codes:?}",
        rpcs.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures; the first of each kind:\n{}",
        failures.len(),
        first_of_each_kind(&failures).join("\n")
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server panicked");
}

/// Counts an answer by RPC, code and first refused field.
fn tally_field(
    per_rpc: &mut BTreeMap<String, usize>,
    method: &MethodDescriptor,
    result: &Result<Vec<Vec<u8>>, tonic::Status>,
) {
    use tonic_types::StatusExt;
    let (code, field) = match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => {
            let details = status.get_error_details();
            let field = details
                .bad_request()
                .and_then(|bad| bad.field_violations.first())
                .map(|v| format!("{} {}", v.field, v.description))
                .unwrap_or_default();
            (status.code(), field)
        }
    };
    *per_rpc
        .entry(format!("{} {code:?} {field}", method.name()))
        .or_default() += 1;
}

/// One failure per RPC and kind of answer (the words before any number), to keep a report short.
fn first_of_each_kind(failures: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    failures
        .iter()
        .filter(|failure| {
            let kind: String = failure
                .split_once(": ")
                .map_or(failure.as_str(), |(_, rest)| rest)
                .chars()
                .take_while(|c| !c.is_ascii_digit())
                .take(80)
                .collect();
            seen.insert(kind)
        })
        .take(40)
        .cloned()
        .collect()
}

/// The text columns of a SQLite database that hold a NUL byte, as "table.column" failures.
async fn stored_nuls(database_url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let mut db = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open the database");
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut db)
    .await
    .expect("list tables")
    .iter()
    .map(|row| row.get(0))
    .collect();
    let mut failures = Vec::new();
    for table in tables {
        let columns: Vec<(String, String)> =
            sqlx::query("SELECT name, type FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&mut db)
                .await
                .expect("list columns")
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
        for (column, kind) in columns {
            if !kind.eq_ignore_ascii_case("TEXT") {
                continue;
            }
            let query = format!(
                "SELECT COUNT(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS BLOB), x'00') > 0"
            );
            let count: i64 = sqlx::query(sqlx::AssertSqlSafe(query))
                .fetch_one(&mut db)
                .await
                .expect("scan a column")
                .get(0);
            if count > 0 {
                failures.push(format!("{count} NUL bytes stored in {table}.{column}"));
            }
        }
    }
    failures
}
