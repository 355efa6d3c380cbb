//! Section 3, import end to end: ImportConversations of N past conversations (in the batches
//! `charla import` sends), timed until the service acknowledged them all, and until the metrics
//! service reflects them (a GetDashboard waiting for the import's positions). The floor appends
//! the same conversations' opened, assigned and closed events in multi-row inserts, one
//! transaction per 2,000 conversations, to the bench's copy of the event log table in the same
//! database: the write an import can't do without, with no rules and no gRPC.

use std::time::{Duration, Instant, SystemTime};

use charla_proto::charla::conversation::v1 as pb;
use indicatif::ProgressBar;

use super::backlog::{self, Target};
use super::figures::{Figure, Measure, Section, median};
use super::fleet::Fleet;
use super::people::{self, Workspace};
use crate::import::{ImportSummary, conversation_client, send_batch};
use crate::metrics_wait::MetricsWait;

/// Conversations per import call (`charla import`'s default).
const BATCH: usize = 500;
/// Conversations per contact: one after another, never overlapping.
const PER_CONTACT: usize = 4;

fn at(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

/// `count` closed conversations of the last 30 days among `contacts`, each contact's one after
/// another: an inbound message, an assignment, a user's answer, a close by that user.
fn history(
    contacts: &[String],
    count: usize,
    label: &str,
) -> Vec<(String, pb::HistoricalConversation)> {
    let span = Duration::from_secs(30 * 86_400);
    let start = SystemTime::now() - span - Duration::from_secs(3_600);
    let slot = span / PER_CONTACT as u32;
    (0..count)
        .map(|index| {
            let contact = &contacts[index % contacts.len()];
            let turn = (index / contacts.len()) as u32;
            let opened = start + slot * turn + Duration::from_secs((index as u64 * 97) % 3_600);
            let agent = format!("agent-{:02}", index % 20);
            let message = |n: u64, kind: pb::AuthorKind, author: &str| pb::HistoricalMessage {
                message_id: format!("{label}-{index}-{n}"),
                sent_at: at(opened + Duration::from_secs(n * 120)),
                direction: if kind == pb::AuthorKind::Contact {
                    pb::MessageDirection::Inbound as i32
                } else {
                    pb::MessageDirection::Outbound as i32
                },
                author_kind: kind as i32,
                author_id: author.to_owned(),
            };
            let item = pb::HistoricalConversation {
                external_id: format!("{label}-{index}"),
                contact_id: contact.clone(),
                channel: Some(people::channel()),
                opened_at: at(opened),
                opened_by: pb::OpenSource::InboundMessage as i32,
                messages: vec![
                    message(0, pb::AuthorKind::Contact, ""),
                    message(2, pb::AuthorKind::User, &agent),
                ],
                assignments: vec![pb::HistoricalAssignment {
                    assigned_at: at(opened + Duration::from_secs(60)),
                    assignee_user_id: agent.clone(),
                    team_id: "team-support".into(),
                    actor_id: "router".into(),
                }],
                closed_at: at(opened + Duration::from_secs(1_800)),
                closed_by: pb::CloseSource::User as i32,
                closed_by_id: agent,
                ..Default::default()
            };
            (item.external_id.clone(), item)
        })
        .collect()
}

/// Runs the import section: `count` conversations per round.
pub async fn run(fleet: &Fleet, rounds: u32, count: usize) -> Result<Section, String> {
    let floor_db = super::conversation_database(fleet).await?;
    let (mut acknowledged, mut reflected, mut floor) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        println!(
            "import: round {} of {rounds}, {count} conversations...",
            round + 1
        );
        let workspace = Workspace::new(fleet)?;
        let contact_count = count.div_ceil(PER_CONTACT).max(1);
        let contacts = people::contacts(
            fleet.channel("contact").await?,
            &workspace,
            &format!("import-{round}"),
            contact_count,
        )
        .await?;
        let items = history(&contacts, count, &format!("import-{round}"));
        let mut client = conversation_client(&fleet.url("conversation")).await?;
        let mut summary = ImportSummary::default();
        let hidden = ProgressBar::hidden();
        let started = Instant::now();
        for batch in items.chunks(BATCH) {
            send_batch(
                &mut client,
                &workspace.bearer,
                batch.to_vec(),
                &mut summary,
                &hidden,
            )
            .await?;
        }
        let acknowledged_after = started.elapsed();
        if !summary.refused.is_empty() || summary.imported as usize != count {
            return Err(format!(
                "the import refused {} of {count} conversations: {:?}",
                summary.refused.len(),
                summary.refused.first()
            ));
        }
        let wait = MetricsWait {
            metrics_url: fleet.url("metrics"),
            metrics_wait_secs: 3_600,
            no_metrics_wait: false,
        };
        wait.wait(&workspace.bearer, &summary.written).await?;
        let reflected_after = started.elapsed();
        acknowledged.push(count as f64 / acknowledged_after.as_secs_f64());
        reflected.push(count as f64 / reflected_after.as_secs_f64());

        let started = Instant::now();
        backlog::append(
            &floor_db,
            Target::FloorTable,
            &workspace.id.to_string(),
            0,
            count,
            round.into(),
            |_| {},
        )
        .await?;
        floor.push(count as f64 / started.elapsed().as_secs_f64());
    }
    let mut section = Section::new("import", "3. Import end to end: conversations per second");
    let floor = Measure::new("bulk append of their events via sqlx", median(&floor), "/s");
    section.figures.push(Figure::against(
        Measure::new(
            format!("ImportConversations of {count}, acknowledged"),
            median(&acknowledged),
            "/s",
        ),
        floor.clone(),
    ));
    section.figures.push(Figure::against(
        Measure::new(
            format!("ImportConversations of {count}, reflected by metrics"),
            median(&reflected),
            "/s",
        ),
        floor,
    ));
    section.notes.push(format!(
        "batches of {BATCH}; each conversation: 2 messages, 1 assignment, closed; the floor \
         writes 3 events per conversation (opened, assigned, closed) and no conversation rows"
    ));
    Ok(section)
}
