//! Section 1, ingest: RecordMessage into an open conversation and opening new ones, at 1, 16 and
//! 64 concurrent callers, beside two floors at the same concurrency: a no-op RPC (the gRPC
//! health Check: the cost of a call alone) and the smallest transaction the rules need, through
//! sqlx without gRPC (see `write_floor`).

use std::sync::Arc;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use prost::Message as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::drive::{drive, per_second};
use super::figures::{Figure, Measure, Section, median};
use super::fleet::Fleet;
use super::people::{self, Workspace, inbound};
use super::write_floor::WriteFloor;

/// The concurrencies measured.
const CALLERS: [usize; 3] = [1, 16, 64];

/// What one concurrency measured, each a median over the rounds (per second).
#[derive(Debug, Default)]
struct Rates {
    into_open: Vec<f64>,
    opening: Vec<f64>,
    no_op: Vec<f64>,
    floor_into_open: Vec<f64>,
    floor_opening: Vec<f64>,
}

/// The event a message write appends, encoded: the floor writes one of this size.
fn message_event(workspace: &str) -> Vec<u8> {
    pb::ConversationEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        partition: 0,
        sequence: 1,
        workspace_id: workspace.to_owned(),
        conversation_id: uuid::Uuid::now_v7().to_string(),
        contact_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        payload: Some(pb::conversation_event::Payload::MessageRecorded(
            pb::MessageRecorded {
                message_id: "bench-message-00000000".into(),
                channel: Some(people::channel()),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                sent_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Runs the ingest section: `ops` calls per measurement, `rounds` rounds.
pub async fn run(
    fleet: &Fleet,
    floor: &WriteFloor,
    rounds: u32,
    ops: usize,
) -> Result<Section, String> {
    let workspace = Workspace::new(fleet)?;
    let contact = fleet.channel("contact").await?;
    let conversation = ConversationServiceClient::new(fleet.channel("conversation").await?);
    let health = HealthClient::new(fleet.channel("conversation").await?);
    let max_callers = CALLERS[CALLERS.len() - 1];
    println!("ingest: making contacts...");
    let regulars =
        Arc::new(people::contacts(contact.clone(), &workspace, "regular", max_callers).await?);
    let measurements = CALLERS.len() * rounds as usize * ops;
    let newcomers = Arc::new(people::contacts(contact, &workspace, "new", measurements).await?);
    let ws = workspace.id.to_string();
    let payload = Arc::new(message_event(&ws));

    // Each regular contact gets its open conversation, in charla and in the floor's tables.
    for (index, regular) in regulars.iter().enumerate() {
        conversation
            .clone()
            .record_message(workspace.request(inbound(regular, format!("warm-{index}"))))
            .await
            .map_err(|s| format!("RecordMessage failed: {}", s.message()))?;
        floor.open(&ws, regular).await?;
    }

    let mut section = Section::new("ingest", "1. Ingest: RecordMessage per second");
    let mut next_newcomer = 0;
    for (ci, callers) in CALLERS.into_iter().enumerate() {
        println!("ingest: {callers} callers...");
        let mut rates = Rates::default();
        for round in 0..rounds {
            let tag = format!("{callers}-{round}");

            let (client, ws_, regulars_) =
                (conversation.clone(), workspace.clone(), regulars.clone());
            let t = tag.clone();
            let took = drive(callers, ops, move |caller, index| {
                let request = ws_.request(inbound(&regulars_[caller], format!("open-{t}-{index}")));
                let mut client = client.clone();
                async move {
                    let answer = client.record_message(request).await;
                    answer
                        .map(|_| ())
                        .map_err(|s| format!("RecordMessage: {}", s.message()))
                }
            })
            .await?;
            rates.into_open.push(per_second(ops, took));

            let first = next_newcomer;
            next_newcomer += ops;
            let (client, ws_, newcomers_) =
                (conversation.clone(), workspace.clone(), newcomers.clone());
            let t = tag.clone();
            let took = drive(callers, ops, move |_, index| {
                let request = ws_.request(inbound(
                    &newcomers_[first + index],
                    format!("new-{t}-{index}"),
                ));
                let mut client = client.clone();
                async move {
                    let answer = client.record_message(request).await;
                    answer
                        .map(|_| ())
                        .map_err(|s| format!("RecordMessage: {}", s.message()))
                }
            })
            .await?;
            rates.opening.push(per_second(ops, took));

            let probe = health.clone();
            let took = drive(callers, ops, move |_, _| {
                let mut probe = probe.clone();
                async move {
                    let request = HealthCheckRequest {
                        service: String::new(),
                    };
                    probe
                        .check(request)
                        .await
                        .map(|_| ())
                        .map_err(|s| s.to_string())
                }
            })
            .await?;
            rates.no_op.push(per_second(ops, took));

            let (floor_, ws_, regulars_, payload_) =
                (floor.clone(), ws.clone(), regulars.clone(), payload.clone());
            let t = tag.clone();
            let took = drive(callers, ops, move |caller, index| {
                let (floor, ws, regulars, payload) = (
                    floor_.clone(),
                    ws_.clone(),
                    regulars_.clone(),
                    payload_.clone(),
                );
                let id = format!("open-{t}-{index}");
                async move { floor.record(&ws, &regulars[caller], &id, &payload).await }
            })
            .await?;
            rates.floor_into_open.push(per_second(ops, took));

            let (floor_, ws_, newcomers_, payload_) = (
                floor.clone(),
                ws.clone(),
                newcomers.clone(),
                payload.clone(),
            );
            let t = tag.clone();
            let took = drive(callers, ops, move |_, index| {
                let (floor, ws, newcomers, payload) = (
                    floor_.clone(),
                    ws_.clone(),
                    newcomers_.clone(),
                    payload_.clone(),
                );
                let id = format!("new-{t}-{index}");
                async move {
                    floor
                        .record(&ws, &newcomers[first + index], &id, &payload)
                        .await
                }
            })
            .await?;
            rates.floor_opening.push(per_second(ops, took));
        }
        debug_assert_eq!(next_newcomer, (ci + 1) * rounds as usize * ops);
        let charla = |what: &str, rates: &[f64]| {
            Measure::new(
                format!("RecordMessage {what}, {callers} callers"),
                median(rates),
                "/s",
            )
        };
        let sql = |what: &str, rates: &[f64]| {
            Measure::new(
                format!("same transaction via sqlx, {what}"),
                median(rates),
                "/s",
            )
        };
        let no_op = Measure::new("no-op RPC (health Check)", median(&rates.no_op), "/s");
        section.figures.push(Figure::against(
            charla("into an open conversation", &rates.into_open),
            sql("into open", &rates.floor_into_open),
        ));
        section.figures.push(Figure::against(
            charla("opening a conversation", &rates.opening),
            sql("opening", &rates.floor_opening),
        ));
        section.figures.push(Figure::against(
            charla("into an open conversation", &rates.into_open),
            no_op,
        ));
    }
    section.notes.push(format!(
        "{ops} calls per measurement, one workspace, each caller its own contact; the SQL floor \
         is one transaction on the bench's own bench_floor_* tables in the conversation database \
         (select the open conversation, insert the message, update or insert the conversation \
         row, append the event(s) under one partition head row); opening in charla also asks \
         the contact service whether the contact may open, the floor does not"
    ));
    Ok(section)
}
