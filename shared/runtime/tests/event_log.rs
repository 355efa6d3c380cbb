//! The event log's ordering guarantees, against a real database: a reader never passes a gap that
//! a slower transaction fills later, partitions don't wait for each other, a workspace's events are
//! numbered among themselves, and a commit wakes only the streams it concerns.

use std::time::{Duration, SystemTime};

use charla_runtime::db::{Database, Migrations};
use charla_runtime::event_log::{self, EventLog, StoredEvent, StreamRequest};
use charla_runtime::workspace::WorkspaceId;
use charla_testing::{Backend, backend_tests, fresh_database_url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LOG_ONLY: Migrations = Migrations {
    sqlite: &[
        event_log::SQLITE_MIGRATION,
        event_log::SQLITE_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::SQLITE_PARTITION_COUNT_MIGRATION,
    ],
    postgres: &[
        event_log::POSTGRES_MIGRATION,
        event_log::POSTGRES_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::POSTGRES_PARTITION_COUNT_MIGRATION,
    ],
};

/// The log as the first release made it, before workspace sequences.
const FIRST_RELEASE: Migrations = Migrations {
    sqlite: &[event_log::SQLITE_MIGRATION],
    postgres: &[event_log::POSTGRES_MIGRATION],
};

async fn log_with(backend: Backend, partitions: u32) -> Option<EventLog> {
    let url = fresh_database_url(backend).await?;
    let db = Database::connect(&url, &LOG_ONLY)
        .await
        .expect("open the database");
    Some(EventLog::new(db, partitions))
}

async fn append(
    log: &EventLog,
    tx: &mut sqlx::AnyConnection,
    workspace: WorkspaceId,
    body: &str,
) -> u64 {
    log.append(tx, workspace, SystemTime::now(), |_| {
        body.as_bytes().to_vec()
    })
    .await
    .expect("append")
    .sequence
}

async fn next(
    events: &mut mpsc::Receiver<Result<StoredEvent, charla_runtime::ApiError>>,
) -> StoredEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event arrives")
        .expect("the stream is open")
        .expect("no error")
}

backend_tests!(
    events_stream_in_sequence_order_and_new_ones_are_pushed,
    the_partition_count_never_goes_down,
    the_partition_count_is_recorded_at_the_first_start,
    an_unrecorded_log_in_use_keeps_one_partition,
    events_appended_together_are_numbered_in_order,
    a_scoped_stream_numbers_its_workspace_events_alone,
    a_commit_wakes_only_the_streams_it_concerns,
    events_written_before_the_upgrade_get_workspace_sequences,
);

/// A log written before partition counts were recorded: the count recorded on upgrade may not
/// drop a partition in use.
async fn the_partition_count_never_goes_down(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let db = Database::connect(&url, &LOG_ONLY).await.unwrap();
    let unrecorded = EventLog::new(db.clone(), 8);
    let busy = std::iter::repeat_with(|| WorkspaceId::new(Uuid::now_v7()))
        .find(|w| unrecorded.partition_of(*w) == 7)
        .unwrap();
    commit_one(&unrecorded, busy, "in partition 7").await;
    let error = EventLog::open(db.clone(), Some(4)).await.unwrap_err();
    assert!(error.to_string().contains("can't go down"), "{error}");
    let error = EventLog::open(db.clone(), None).await.unwrap_err();
    assert!(error.to_string().contains("can't go down"), "{error}");
    let log = EventLog::open(db.clone(), Some(8)).await.unwrap();
    assert_eq!(log.partitions(), 8, "the refused counts were not recorded");
}

async fn the_partition_count_is_recorded_at_the_first_start(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let db = Database::connect(&url, &LOG_ONLY).await.unwrap();
    // Unset, a new log gets the engine's default: one writer at a time on SQLite, writers to
    // different workspaces side by side on PostgreSQL.
    let default = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 16,
    };
    assert_eq!(event_log::default_partitions(db.backend()), default);
    assert_eq!(
        EventLog::open(db.clone(), None).await.unwrap().partitions(),
        default
    );
    let error = EventLog::open(db.clone(), Some(4)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "CHARLA_EVENT_PARTITIONS is 4, but this database's event log was created with \
             {default} (the partition count is recorded at the first start and fixed for the \
             database's life); set {default}, or leave it unset to use the recorded count"
        )
    );
    assert_eq!(
        EventLog::open(db.clone(), Some(default))
            .await
            .unwrap()
            .partitions(),
        default,
        "the recorded count itself is fine"
    );
    assert_eq!(
        EventLog::open(db, None).await.unwrap().partitions(),
        default,
        "a later start keeps the recorded count"
    );
}

/// A log written before partition counts were recorded keeps the one partition it was using
/// when none is configured, whatever the engine's default for a new log.
async fn an_unrecorded_log_in_use_keeps_one_partition(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let db = Database::connect(&url, &LOG_ONLY).await.unwrap();
    let unrecorded = EventLog::new(db.clone(), 1);
    commit_one(
        &unrecorded,
        WorkspaceId::new(Uuid::now_v7()),
        "before counts",
    )
    .await;
    assert_eq!(EventLog::open(db, None).await.unwrap().partitions(), 1);
}

async fn events_stream_in_sequence_order_and_new_ones_are_pushed(backend: Backend) {
    let Some(log) = log_with(backend, 1).await else {
        return;
    };
    let workspace = WorkspaceId::new(Uuid::now_v7());
    let pool = log_pool(&log).clone();
    for body in ["one", "two"] {
        let mut tx = pool.begin().await.unwrap();
        append(&log, &mut tx, workspace, body).await;
        tx.commit().await.unwrap();
        log.notify_committed(workspace);
    }
    let request = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut events = log.stream(request, CancellationToken::new());
    assert_eq!(next(&mut events).await.payload, b"one");
    assert_eq!(next(&mut events).await.payload, b"two");
    let mut tx = pool.begin().await.unwrap();
    append(&log, &mut tx, workspace, "three").await;
    tx.commit().await.unwrap();
    log.notify_committed(workspace);
    let third = next(&mut events).await;
    assert_eq!(
        (third.sequence, third.payload.as_slice()),
        (3, b"three".as_slice())
    );
}

/// Appends one event of `workspace` in a transaction of its own, and announces it.
async fn commit_one(log: &EventLog, workspace: WorkspaceId, body: &str) -> u64 {
    let mut tx = log_pool(log).begin().await.unwrap();
    let sequence = append(log, &mut tx, workspace, body).await;
    tx.commit().await.unwrap();
    log.notify_committed(workspace);
    sequence
}

/// Two workspaces write in one partition: a stream scoped to one of them counts its events 1, 2,
/// 3, resumes from a workspace cursor, and its head is the workspace's; the unscoped stream keeps
/// partition sequences.
async fn a_scoped_stream_numbers_its_workspace_events_alone(backend: Backend) {
    let Some(log) = log_with(backend, 1).await else {
        return;
    };
    let (mine, other) = (
        WorkspaceId::new(Uuid::now_v7()),
        WorkspaceId::new(Uuid::now_v7()),
    );
    for (workspace, body) in [(mine, "a1"), (other, "b1"), (other, "b2"), (mine, "a2")] {
        commit_one(&log, workspace, body).await;
    }
    let scoped = StreamRequest::parse(1, &[], &[], Some(mine)).unwrap();
    let mut scoped = log.stream(scoped, CancellationToken::new());
    let read: Vec<(u64, Vec<u8>, u64)> = [next(&mut scoped).await, next(&mut scoped).await]
        .into_iter()
        .map(|event| (event.sequence, event.payload, event.head))
        .collect();
    assert_eq!(
        read,
        [(1, b"a1".to_vec(), 2), (2, b"a2".to_vec(), 2)],
        "the workspace's own numbers and head"
    );
    commit_one(&log, other, "b3").await;
    commit_one(&log, mine, "a3").await;
    let third = next(&mut scoped).await;
    assert_eq!(
        (third.sequence, third.payload.as_slice()),
        (3, b"a3".as_slice())
    );

    let resumed = StreamRequest::parse(1, &[], &[(0, 2)], Some(mine)).unwrap();
    let mut resumed = log.stream(resumed, CancellationToken::new());
    let after_cursor = next(&mut resumed).await;
    assert_eq!(
        (
            after_cursor.sequence,
            after_cursor.payload.as_slice(),
            after_cursor.head
        ),
        (3, b"a3".as_slice(), 3)
    );

    let unscoped = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut unscoped = log.stream(unscoped, CancellationToken::new());
    let mut sequences = Vec::new();
    for _ in 0..6 {
        let event = next(&mut unscoped).await;
        assert_eq!(event.head, 6, "the partition's head");
        sequences.push(event.sequence);
    }
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        (
            log.head(0).await.unwrap(),
            log.workspace_head(mine).await.unwrap()
        ),
        (6, 3)
    );
}

/// Idle streams of other workspaces are not woken by a commit: only the unscoped streams of its
/// partition and the streams scoped to its workspace are.
async fn a_commit_wakes_only_the_streams_it_concerns(backend: Backend) {
    let Some(log) = log_with(backend, 1).await else {
        return;
    };
    let (mine, other) = (
        WorkspaceId::new(Uuid::now_v7()),
        WorkspaceId::new(Uuid::now_v7()),
    );
    commit_one(&log, mine, "first").await;
    let scoped = StreamRequest::parse(1, &[], &[], Some(mine)).unwrap();
    let mut scoped = log.stream(scoped, CancellationToken::new());
    let unscoped = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut unscoped = log.stream(unscoped, CancellationToken::new());
    // Once each has read the first event it is subscribed, and idle.
    next(&mut scoped).await;
    next(&mut unscoped).await;

    let before = log.wake_ups();
    for n in 0..10 {
        commit_one(&log, other, &format!("elsewhere {n}")).await;
        next(&mut unscoped).await;
    }
    assert_eq!(
        log.wake_ups() - before,
        10,
        "only the unscoped stream wakes for another workspace's commits"
    );
    assert!(scoped.try_recv().is_err());

    commit_one(&log, mine, "mine").await;
    assert_eq!(
        log.wake_ups() - before,
        12,
        "both streams wake for this one"
    );
    let event = next(&mut scoped).await;
    assert_eq!(
        (event.sequence, event.payload.as_slice()),
        (2, b"mine".as_slice())
    );
}

/// Events stored before the workspace sequence existed are numbered by the migration, per
/// workspace in partition order, and new ones follow on.
async fn events_written_before_the_upgrade_get_workspace_sequences(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let (first, second) = (
        WorkspaceId::new(Uuid::now_v7()),
        WorkspaceId::new(Uuid::now_v7()),
    );
    let old = Database::connect(&url, &FIRST_RELEASE).await.unwrap();
    for (seq, workspace) in [(1, first), (2, second), (3, first), (4, first), (5, second)] {
        insert_as_the_first_release(&old, seq, workspace).await;
    }
    old.close().await;

    let db = Database::connect(&url, &LOG_ONLY).await.unwrap();
    let log = EventLog::open(db, Some(1)).await.unwrap();
    commit_one(&log, first, "after").await;
    let numbered = |events: Vec<StoredEvent>| -> Vec<(u64, String)> {
        events
            .into_iter()
            .map(|e| (e.sequence, String::from_utf8(e.payload).unwrap()))
            .collect()
    };
    assert_eq!(
        numbered(log.read_workspace(first, 0, 10).await.unwrap()),
        [(1, "1"), (2, "3"), (3, "4"), (4, "after")].map(|(n, b)| (n, b.to_owned()))
    );
    assert_eq!(
        numbered(log.read_workspace(second, 0, 10).await.unwrap()),
        [(1, "2"), (2, "5")].map(|(n, b)| (n, b.to_owned()))
    );
}

/// An append as the first release wrote it: no workspace sequence; the payload is the sequence.
async fn insert_as_the_first_release(db: &Database, seq: i64, workspace: WorkspaceId) {
    sqlx::query(
        "INSERT INTO event_log_heads (partition_no, last_seq) VALUES (0, $1)
         ON CONFLICT (partition_no) DO UPDATE SET last_seq = $1",
    )
    .bind(seq)
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO event_log (partition_no, seq, event_id, workspace_id, occurred_at, payload)
         VALUES (0, $1, $2, $3, 0, $4)",
    )
    .bind(seq)
    .bind(Uuid::now_v7().to_string())
    .bind(workspace.to_string())
    .bind(seq.to_string().into_bytes())
    .execute(db.pool())
    .await
    .unwrap();
}

/// During a rolling update a replica of the previous release appends without a workspace
/// sequence; the database numbers its event so scoped streams don't miss it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_replica_s_append_gets_a_workspace_sequence() {
    let Some(log) = log_with(Backend::Postgres, 1).await else {
        return;
    };
    let workspace = WorkspaceId::new(Uuid::now_v7());
    commit_one(&log, workspace, "new replica").await;
    insert_as_the_first_release(log.database(), 2, workspace).await;
    commit_one(&log, workspace, "new replica again").await;
    let sequences: Vec<(u64, Vec<u8>)> = log
        .read_workspace(workspace, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.sequence, e.payload))
        .collect();
    assert_eq!(
        sequences,
        [
            (1, b"new replica".to_vec()),
            (2, b"2".to_vec()),
            (3, b"new replica again".to_vec())
        ]
    );
}

/// The pool behind a log, for tests that run their own transactions.
fn log_pool(log: &EventLog) -> &sqlx::AnyPool {
    log.database().pool()
}

/// PostgreSQL hands out sequence numbers before commit and commits concurrent transactions in any
/// order. Transaction A takes sequence 1 and stays open; B appends after it. A reader must not see
/// B's event before A's: if it did, it would move its cursor past 1 and lose A's event forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_passes_an_event_still_being_committed() {
    let Some(log) = log_with(Backend::Postgres, 1).await else {
        return;
    };
    let workspace = WorkspaceId::new(Uuid::now_v7());
    let pool = log_pool(&log).clone();

    let mut slow = pool.begin().await.unwrap();
    assert_eq!(append(&log, &mut slow, workspace, "slow").await, 1);

    let fast = tokio::spawn({
        let (log, pool) = (log.clone(), pool.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            let sequence = append(&log, &mut tx, workspace, "fast").await;
            tx.commit().await.unwrap();
            log.notify_committed(workspace);
            sequence
        }
    });

    let request = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut events = log.stream(request, CancellationToken::new());
    let scoped = StreamRequest::parse(1, &[], &[], Some(workspace)).unwrap();
    let mut scoped = log.stream(scoped, CancellationToken::new());
    // While the slow transaction is open, nothing may be visible: not even the fast one's event,
    // which would let the reader skip sequence 1.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        events.try_recv().is_err() && scoped.try_recv().is_err(),
        "no event is visible before the slow one commits"
    );
    assert!(log.read(0, 0, 10).await.unwrap().is_empty());
    assert!(
        !fast.is_finished(),
        "the later writer waits for the earlier one"
    );

    slow.commit().await.unwrap();
    log.notify_committed(workspace);
    assert_eq!(fast.await.unwrap(), 2);
    for events in [&mut events, &mut scoped] {
        let first = next(events).await;
        let second = next(events).await;
        assert_eq!(
            (first.sequence, first.payload.as_slice()),
            (1, b"slow".as_slice())
        );
        assert_eq!(
            (second.sequence, second.payload.as_slice()),
            (2, b"fast".as_slice())
        );
    }
}

/// A rolled-back append gives its sequence number to the next writer: no hole is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_append_leaves_no_gap() {
    let Some(log) = log_with(Backend::Postgres, 1).await else {
        return;
    };
    let workspace = WorkspaceId::new(Uuid::now_v7());
    let pool = log_pool(&log).clone();
    let mut abandoned = pool.begin().await.unwrap();
    assert_eq!(append(&log, &mut abandoned, workspace, "lost").await, 1);
    abandoned.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(append(&log, &mut tx, workspace, "kept").await, 1);
    tx.commit().await.unwrap();
}

/// Writers to different partitions lock different head rows and never wait for each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_to_different_partitions_do_not_wait_for_each_other() {
    let Some(log) = log_with(Backend::Postgres, 8).await else {
        return;
    };
    let first = WorkspaceId::new(Uuid::now_v7());
    let second = std::iter::repeat_with(|| WorkspaceId::new(Uuid::now_v7()))
        .find(|w| log.partition_of(*w) != log.partition_of(first))
        .unwrap();
    let pool = log_pool(&log).clone();
    let mut open = pool.begin().await.unwrap();
    append(&log, &mut open, first, "held open").await;
    let other = async {
        let mut tx = pool.begin().await.unwrap();
        append(&log, &mut tx, second, "other partition").await;
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("the other partition's writer is not blocked");
    open.commit().await.unwrap();
}

/// Several events appended in one call take consecutive partition and workspace sequences after
/// what the partition and the workspace hold, each with the payload encoded for its position.
async fn events_appended_together_are_numbered_in_order(backend: Backend) {
    let Some(log) = log_with(backend, 1).await else {
        return;
    };
    let (mine, other) = (
        WorkspaceId::new(Uuid::now_v7()),
        WorkspaceId::new(Uuid::now_v7()),
    );
    commit_one(&log, other, "other 1").await;
    commit_one(&log, mine, "mine 1").await;
    let mut tx = log_pool(&log).begin().await.unwrap();
    let now = SystemTime::now();
    let appended = log
        .append_all(&mut tx, mine, &[now, now, now], |index, position| {
            format!("mine {} at {}", index + 2, position.sequence).into_bytes()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let numbers: Vec<(u64, u64)> = appended
        .iter()
        .map(|event| (event.position.sequence, event.workspace_sequence))
        .collect();
    assert_eq!(numbers, [(3, 2), (4, 3), (5, 4)]);
    let read: Vec<(u64, String)> = log
        .read_workspace(mine, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.sequence, String::from_utf8(event.payload).unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            (1, "mine 1".to_owned()),
            (2, "mine 2 at 3".to_owned()),
            (3, "mine 3 at 4".to_owned()),
            (4, "mine 4 at 5".to_owned()),
        ]
    );
    assert_eq!(commit_one(&log, other, "other 2").await, 6);
}
