//! Waiting for positions (`min_positions`): what this process's consumer published after its
//! commit answers the wait by itself, without the stored cursor and without waiting for the
//! producer to say how far its stream is; a position the producer never wrote is still refused.

use std::future::{Future, pending};
use std::time::Duration;

use charla_runtime::ApiError;
use charla_runtime::applied::{AppliedPositions, Positions, StreamHeads, wait_until_applied};
use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::db::{Database, Migrations};
use charla_testing::{Backend, fresh_database_url};

/// A cursor table with nothing stored: only what is published can answer.
async fn empty_cursor() -> ConsumerCursor {
    let url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let db = Database::connect(
        &url,
        &Migrations {
            sqlite: &[],
            postgres: &[],
        },
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE consumer_cursors (consumer TEXT, partition_no BIGINT, seq BIGINT)")
        .execute(db.pool())
        .await
        .unwrap();
    ConsumerCursor::new(db, "test-consumer")
}

/// A `min_positions` wait for `wanted` on `cursor` and what `published` publishes, with the
/// producer's answer `heads`.
async fn wait(
    cursor: &ConsumerCursor,
    published: &AppliedPositions,
    wanted: &Positions,
    budget: Duration,
    heads: impl Future<Output = Option<StreamHeads>>,
) -> Result<(), ApiError> {
    wait_until_applied(
        "min_positions",
        cursor,
        published.subscribe(),
        wanted,
        budget,
        heads,
    )
    .await
}

#[tokio::test]
async fn a_published_position_answers_while_the_producer_is_still_asked() {
    let cursor = empty_cursor().await;
    let published = AppliedPositions::default();
    let wanted = Positions::from([(0, 3)]);
    // A producer that never answers: the wait must not hang on it.
    let waiting = wait(
        &cursor,
        &published,
        &wanted,
        Duration::from_secs(30),
        pending(),
    );
    let publish = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        published.committed(0, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        published.committed(0, 3);
    };
    let (answer, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(waiting, publish)
    })
    .await
    .expect("answered once the consumer published the position");
    answer.unwrap();

    // Published before the read began: answered at once, the producer never asked.
    tokio::time::timeout(
        Duration::from_secs(10),
        wait(
            &cursor,
            &published,
            &wanted,
            Duration::from_secs(30),
            pending(),
        ),
    )
    .await
    .expect("answered at once")
    .unwrap();
}

#[tokio::test]
async fn a_position_past_the_producers_head_is_refused_while_waiting() {
    let cursor = empty_cursor().await;
    let published = AppliedPositions::default();
    let wanted = Positions::from([(1, 9)]);
    let heads = async { Some((2, Positions::from([(0, 4), (1, 5)]))) };
    let refused = wait(&cursor, &published, &wanted, Duration::from_secs(30), heads)
        .await
        .unwrap_err();
    match refused {
        ApiError::FailedPrecondition { reason, .. } => assert_eq!(reason, "POSITION_NOT_WRITTEN"),
        other => panic!("expected POSITION_NOT_WRITTEN, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rebuild_takes_back_what_was_published() {
    let cursor = empty_cursor().await;
    let published = AppliedPositions::default();
    published.committed(0, 3);
    published.reset();
    let wanted = Positions::from([(0, 3)]);
    let waiting = wait(
        &cursor,
        &published,
        &wanted,
        Duration::from_millis(300),
        async { None },
    );
    let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the wait ends at its budget");
    assert!(
        matches!(waited, Err(ApiError::DeadlineExceeded { .. })),
        "nothing applied since the reset: {waited:?}"
    );
}
