//! The event log's ordering guarantees, against a real database: a reader never passes a gap that
//! a slower transaction fills later, and partitions don't wait for each other.

use std::time::{Duration, SystemTime};

use charla_runtime::db::{Database, Migrations};
use charla_runtime::event_log::{self, EventLog, StoredEvent, StreamRequest};
use charla_runtime::workspace::WorkspaceId;
use charla_testing::{Backend, backend_tests, fresh_database_url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LOG_ONLY: Migrations = Migrations {
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
);

async fn the_partition_count_never_goes_down(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let db = Database::connect(&url, &LOG_ONLY).await.unwrap();
    let log = EventLog::open(db.clone(), 8).await.unwrap();
    let busy = std::iter::repeat_with(|| WorkspaceId::new(Uuid::now_v7()))
        .find(|w| log.partition_of(*w) == 7)
        .unwrap();
    let mut tx = db.pool().begin().await.unwrap();
    append(&log, &mut tx, busy, "in partition 7").await;
    tx.commit().await.unwrap();
    assert!(
        EventLog::open(db.clone(), 16).await.is_ok(),
        "more partitions are fine"
    );
    let error = EventLog::open(db, 4).await.unwrap_err();
    assert!(error.to_string().contains("can't go down"), "{error}");
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
        log.notify_committed();
    }
    let request = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut events = log.stream(request, CancellationToken::new());
    assert_eq!(next(&mut events).await.payload, b"one");
    assert_eq!(next(&mut events).await.payload, b"two");
    let mut tx = pool.begin().await.unwrap();
    append(&log, &mut tx, workspace, "three").await;
    tx.commit().await.unwrap();
    log.notify_committed();
    let third = next(&mut events).await;
    assert_eq!(
        (third.sequence, third.payload.as_slice()),
        (3, b"three".as_slice())
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
            log.notify_committed();
            sequence
        }
    });

    let request = StreamRequest::parse(1, &[], &[], None).unwrap();
    let mut events = log.stream(request, CancellationToken::new());
    // While the slow transaction is open, nothing may be visible: not even the fast one's event,
    // which would let the reader skip sequence 1.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        events.try_recv().is_err(),
        "no event is visible before the slow one commits"
    );
    assert!(log.read(0, 0, None, 10).await.unwrap().is_empty());
    assert!(
        !fast.is_finished(),
        "the later writer waits for the earlier one"
    );

    slow.commit().await.unwrap();
    log.notify_committed();
    assert_eq!(fast.await.unwrap(), 2);
    let first = next(&mut events).await;
    let second = next(&mut events).await;
    assert_eq!(
        (first.sequence, first.payload.as_slice()),
        (1, b"slow".as_slice())
    );
    assert_eq!(
        (second.sequence, second.payload.as_slice()),
        (2, b"fast".as_slice())
    );
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
