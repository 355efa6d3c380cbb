//! Large synthetic data sets, fast: conversations (opened, assigned, closed over the last 35
//! days, many contacts, 20 assignees in 3 teams, 4 channels, 5 closing categories) as
//! `ConversationEvent`s, bulk-appended straight into the conversation service's event log table
//! in multi-row inserts. The metrics service then consumes them through its real stream, as it
//! would any event.
//!
//! The appender follows the log's rules (shared/runtime/src/event_log.rs): it takes a run of
//! sequence numbers from the partition's head row, in the same transaction as the rows, so the
//! stream never sees a gap; each row gets the next numbers of its workspace too.

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::clock::to_micros;
use charla_runtime::db::Database;
use prost::Message as _;
use sqlx::{AssertSqlSafe, Row};

/// Rows per INSERT statement at most (7 values each), fewer on SQLite, which binds a few hundred
/// values a statement fastest (`Backend::max_binds`).
const ROWS_PER_STATEMENT: usize = 500;
/// Values per row of the INSERT statements.
const COLUMNS: usize = 7;
/// Conversations per transaction.
const CONVERSATIONS_PER_TRANSACTION: usize = 2_000;

const ASSIGNEES: usize = 20;
const TEAMS: [&str; 3] = ["team-sales", "team-support", "team-vip"];
const CHANNELS: [contact_pb::ChannelType; 4] = [
    contact_pb::ChannelType::Whatsapp,
    contact_pb::ChannelType::FacebookMessenger,
    contact_pb::ChannelType::Instagram,
    contact_pb::ChannelType::Telegram,
];
const CATEGORIES: [&str; 5] = ["Sale", "Support", "Billing", "Spam", "Other"];
/// The data set's span, ending an hour ago (reports look at the last 30 days of it).
const SPAN: Duration = Duration::from_secs(35 * 86_400);

/// SplitMix64: repeatable synthetic data needs no cryptography.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn seconds(&mut self, min: u64, max: u64) -> Duration {
        Duration::from_secs(min + self.below(max - min))
    }
}

/// One synthetic conversation: what its three events say.
struct Synthetic {
    id: String,
    contact: String,
    channel: pb::Channel,
    assignee: String,
    team: String,
    category: &'static str,
    opened_at: SystemTime,
    assigned_at: SystemTime,
    first_response_at: SystemTime,
    closed_at: SystemTime,
}

/// Makes the conversations of one workspace a chunk at a time (a million of them need not sit in
/// memory): `count` in all, opened in order over the span, among `count / 3` contacts.
struct Generator {
    random: Random,
    contacts: Vec<String>,
    start: SystemTime,
    /// The opening times are spread evenly over this, each moved by up to one step.
    step: Duration,
    made: usize,
    count: usize,
}

impl Generator {
    fn new(seed: u64, count: usize, now: SystemTime) -> Self {
        let span = SPAN - Duration::from_secs(86_400);
        Self {
            random: Random(seed),
            contacts: (0..(count / 3).max(1))
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
            start: now - SPAN,
            step: span / count.max(1) as u32,
            made: 0,
            count,
        }
    }

    /// Up to `n` more conversations, in opening order.
    fn chunk(&mut self, n: usize) -> Vec<Synthetic> {
        let n = n.min(self.count - self.made);
        (0..n).map(|_| self.one()).collect()
    }

    fn one(&mut self) -> Synthetic {
        let random = &mut self.random;
        let jitter = self.step.mul_f64(random.below(1_000) as f64 / 1_000.0);
        let opened_at = self.start + self.step * self.made as u32 + jitter;
        self.made += 1;
        let assigned_at = opened_at + random.seconds(5, 600);
        let first_response_at = assigned_at + random.seconds(5, 3_600);
        let closed_at = first_response_at + random.seconds(60, 8 * 3_600);
        let assignee = random.below(ASSIGNEES as u64) as usize;
        Synthetic {
            id: uuid::Uuid::now_v7().to_string(),
            contact: self.contacts[random.below(self.contacts.len() as u64) as usize].clone(),
            channel: pb::Channel {
                channel_type: CHANNELS[random.below(4) as usize] as i32,
                channel_id: "bench".into(),
            },
            assignee: format!("agent-{assignee:02}"),
            team: TEAMS[assignee % TEAMS.len()].into(),
            category: CATEGORIES[random.below(CATEGORIES.len() as u64) as usize],
            opened_at,
            assigned_at,
            first_response_at,
            closed_at,
        }
    }
}

fn timestamp(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

fn duration(from: SystemTime, to: SystemTime) -> Option<prost_types::Duration> {
    to.duration_since(from)
        .ok()
        .and_then(|d| prost_types::Duration::try_from(d).ok())
}

impl Synthetic {
    /// The conversation's events: (when, payload), in order.
    fn events(&self) -> [(SystemTime, pb::conversation_event::Payload); 3] {
        use pb::conversation_event::Payload;
        let opened = Payload::Opened(pb::ConversationOpened {
            channel: Some(self.channel.clone()),
            opened_by: pb::OpenSource::InboundMessage as i32,
            opened_by_id: String::new(),
            opened_at: timestamp(self.opened_at),
            external_id: String::new(),
        });
        let assigned = Payload::Assigned(pb::ConversationAssigned {
            previous_assignee_user_id: String::new(),
            previous_team_id: String::new(),
            assignee_user_id: self.assignee.clone(),
            team_id: self.team.clone(),
            actor_id: "router".into(),
            assignment_count: 1,
        });
        let first_response = duration(self.opened_at, self.first_response_at);
        let closed = Payload::Closed(pb::ConversationClosed {
            channel: Some(self.channel.clone()),
            opened_by: pb::OpenSource::InboundMessage as i32,
            opened_at: timestamp(self.opened_at),
            closed_by: pb::CloseSource::User as i32,
            closed_by_id: self.assignee.clone(),
            closed_at: timestamp(self.closed_at),
            resolution_time: duration(self.opened_at, self.closed_at),
            assignee_user_id: self.assignee.clone(),
            team_id: self.team.clone(),
            closing_category: self.category.into(),
            first_response_at: timestamp(self.first_response_at),
            first_response_time: first_response,
            first_response_user_id: self.assignee.clone(),
            response_times: first_response.into_iter().collect(),
            first_assignee_user_id: self.assignee.clone(),
            first_assigned_at: timestamp(self.assigned_at),
            time_to_first_assignment: duration(self.opened_at, self.assigned_at),
            last_assigned_at: timestamp(self.assigned_at),
            last_assignee_user_id: self.assignee.clone(),
            assignment_count: 1,
            message_counts: Some(pb::MessageCounts {
                inbound_count: 1,
                outbound_count: 1,
                user_outbound_count: 1,
                response_count: 1,
            }),
            ..Default::default()
        });
        [
            (self.opened_at, opened),
            (self.assigned_at, assigned),
            (self.closed_at, closed),
        ]
    }
}

/// Where appended events go: the conversation service's log, or the floor's copy of its shape.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    EventLog,
    FloorTable,
}

impl Target {
    fn tables(self) -> (&'static str, &'static str) {
        match self {
            Target::EventLog => ("event_log", "event_log_heads"),
            Target::FloorTable => ("bench_floor_events", "bench_floor_heads"),
        }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub events: u64,
    /// The partition's last sequence after the append.
    pub head: u64,
}

/// Appends `count` synthetic conversations of `workspace` (3 events each) to `partition` of
/// `target` in `db`, calling `progress` with the conversations written so far.
pub async fn append(
    db: &Database,
    target: Target,
    workspace: &str,
    partition: u32,
    count: usize,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<Appended, String> {
    let now = SystemTime::now() - Duration::from_secs(3_600);
    let mut generator = Generator::new(seed, count, now);
    let mut appended = Appended { events: 0, head: 0 };
    loop {
        let chunk = generator.chunk(CONVERSATIONS_PER_TRANSACTION);
        if chunk.is_empty() {
            break;
        }
        appended.head = append_chunk(db, target, workspace, partition, &chunk)
            .await
            .map_err(|e| format!("the bulk append failed: {e}"))?
            .head;
        appended.events += chunk.len() as u64 * 3;
        progress(generator.made);
    }
    Ok(appended)
}

/// One transaction: a run of sequence numbers from the head row, then the rows.
async fn append_chunk(
    db: &Database,
    target: Target,
    workspace: &str,
    partition: u32,
    chunk: &[Synthetic],
) -> Result<Appended, sqlx::Error> {
    let (table, heads) = target.tables();
    let events = chunk.len() as i64 * 3;
    let mut tx = super::write_floor::begin_writing(db).await?;
    let last: i64 = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {heads} (partition_no, last_seq) VALUES ($1, $2)
         ON CONFLICT (partition_no) DO UPDATE SET last_seq = {heads}.last_seq + $2
         RETURNING last_seq"
    )))
    .bind(i64::from(partition))
    .bind(events)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let workspace_last: Option<i64> = sqlx::query(AssertSqlSafe(format!(
        "SELECT max(workspace_seq) FROM {table} WHERE workspace_id = $1"
    )))
    .bind(workspace)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let mut seq = last - events;
    let mut workspace_seq = workspace_last.unwrap_or(0);
    let mut rows = Vec::with_capacity(chunk.len() * 3);
    for conversation in chunk {
        for (at, payload) in conversation.events() {
            seq += 1;
            workspace_seq += 1;
            let event_id = uuid::Uuid::now_v7().to_string();
            let event = pb::ConversationEvent {
                event_id: event_id.clone(),
                partition,
                sequence: seq as u64,
                workspace_id: workspace.to_owned(),
                conversation_id: conversation.id.clone(),
                contact_id: conversation.contact.clone(),
                occurred_at: timestamp(at),
                imported: false,
                trace_parent: String::new(),
                payload: Some(payload),
            };
            rows.push((
                seq,
                event_id,
                to_micros(at),
                event.encode_to_vec(),
                workspace_seq,
            ));
        }
    }
    let per_statement = ROWS_PER_STATEMENT.min(db.backend().max_binds() / COLUMNS);
    for statement_rows in rows.chunks(per_statement) {
        let values: Vec<String> = (0..statement_rows.len())
            .map(|row| {
                let p = row * COLUMNS;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO {table}
             (partition_no, seq, event_id, workspace_id, occurred_at, payload, workspace_seq)
             VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (seq, event_id, at, payload, workspace_seq) in statement_rows {
            query = query
                .bind(i64::from(partition))
                .bind(*seq)
                .bind(event_id.clone())
                .bind(workspace)
                .bind(*at)
                .bind(payload.clone())
                .bind(*workspace_seq);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Appended {
        events: events as u64,
        head: last as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_conversations_are_ordered_and_spread_over_assignees_teams_and_contacts() {
        let now = SystemTime::now();
        let mut generator = Generator::new(1, 3_000, now);
        let mut all = generator.chunk(2_000);
        all.extend(generator.chunk(2_000));
        assert_eq!(all.len(), 3_000);
        assert!(all.windows(2).all(|w| w[0].opened_at <= w[1].opened_at));
        assert!(all.iter().all(|c| c.opened_at < c.assigned_at
            && c.assigned_at < c.first_response_at
            && c.first_response_at < c.closed_at
            && c.closed_at < now));
        let assignees: std::collections::BTreeSet<_> = all.iter().map(|c| &c.assignee).collect();
        let teams: std::collections::BTreeSet<_> = all.iter().map(|c| &c.team).collect();
        let contacts: std::collections::BTreeSet<_> = all.iter().map(|c| &c.contact).collect();
        assert_eq!((assignees.len(), teams.len()), (ASSIGNEES, TEAMS.len()));
        assert!(
            contacts.len() > 500 && contacts.len() <= 1_000,
            "{}",
            contacts.len()
        );
        let [(_, opened), _, (_, closed)] = all[0].events();
        assert!(matches!(opened, pb::conversation_event::Payload::Opened(_)));
        assert!(matches!(closed, pb::conversation_event::Payload::Closed(_)));
    }
}
