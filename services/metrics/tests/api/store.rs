//! The store's exactly-once application: a redelivered event, or one delivered again after a
//! crash between two events, changes nothing. Its reads survive another replica's migration.

use charla_metrics::domain::{Change, Closure, Cover, Dimensions};
use charla_metrics::store::{MIGRATIONS, MetricsStore, StreamEvent};
use charla_runtime::db::{Database, PoolConfig};
use charla_testing::{Backend, backend_tests, fresh_database_url};

backend_tests!(
    a_redelivered_event_is_applied_once,
    report_settings_are_read_after_another_replica_adds_a_column,
    pages_of_closed_conversations_give_each_once_in_order_across_ties,
);

fn opened(conversation: &str) -> Change {
    Change::Opened {
        conversation: conversation.into(),
        contact: "contact-1".into(),
        dimensions: Dimensions {
            channel_type: "CHANNEL_TYPE_SMS".into(),
            ..Dimensions::default()
        },
        opened_at: 1_000_000_000,
        imported: false,
    }
}

fn event(sequence: u64, change: &Change) -> StreamEvent {
    StreamEvent {
        workspace: "w".into(),
        partition: 0,
        sequence,
        change: change.clone(),
    }
}

async fn a_redelivered_event_is_applied_once(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let store = MetricsStore::new(Database::connect(&url, &MIGRATIONS).await.unwrap());
    assert_eq!(
        store.apply_batch(&[event(1, &opened("c1"))]).await.unwrap(),
        1
    );
    assert_eq!(
        store.apply_batch(&[event(1, &opened("c1"))]).await.unwrap(),
        0,
        "the same position again"
    );
    let closed = Change::Closed {
        conversation: "c1".into(),
        contact: "contact-1".into(),
        dimensions: Dimensions {
            channel_type: "CHANNEL_TYPE_SMS".into(),
            closed_by: "CLOSE_SOURCE_USER".into(),
            ..Dimensions::default()
        },
        opened_at: 1_000_000_000,
        closed_at: 1_060_000_000,
        closure: Closure {
            resolution: std::time::Duration::from_secs(60),
            ..Closure::default()
        },
        imported: false,
        record: Vec::new(),
    };
    // A batch that starts with an event applied before applies only the rest.
    let batch = [event(1, &opened("c1")), event(2, &closed)];
    assert_eq!(store.apply_batch(&batch).await.unwrap(), 1);
    // A consumer that crashed after committing event 2 but before learning so gets it again.
    assert_eq!(store.apply_batch(&batch[1..]).await.unwrap(), 0);
    // An event beyond the next one means the stored position moved: refused, nothing applied.
    assert!(store.apply_batch(&[event(4, &opened("c2"))]).await.is_err());

    let day = Cover::of(&[0, 86_400_000_000]);
    let all = store
        .dimension_rows("w", None, &day)
        .await
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].opened, 1);
    assert_eq!(all[0].closed.as_ref().map(|s| s.closed), Some(1));
    let quarters = Cover::of(&[0, 900_000_000, 1_800_000_000]);
    let combinations = store
        .combination_rows("w", &quarters)
        .await
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(combinations.iter().map(|row| row.opened).sum::<i64>(), 1);
    assert_eq!(
        combinations
            .iter()
            .filter_map(|row| row.closed.as_ref())
            .map(|stats| stats.closed)
            .sum::<u64>(),
        1
    );
    assert_eq!(store.live_counts("w").await.unwrap().open, 0);
    assert_eq!(store.cursor().positions().await.unwrap(), [(0, 2)]);

    // The next event after the stored position (the common case) is applied, and moves it.
    assert_eq!(
        store.apply_batch(&[event(3, &opened("c2"))]).await.unwrap(),
        1
    );
    assert_eq!(store.live_counts("w").await.unwrap().open, 1);
    assert_eq!(store.cursor().positions().await.unwrap(), [(0, 3)]);
    assert_eq!(
        store.apply_batch(&[event(3, &opened("c2"))]).await.unwrap(),
        0,
        "and only once"
    );
}

async fn report_settings_are_read_after_another_replica_adds_a_column(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    // One connection, so the second read runs where the first one ran.
    let pool = PoolConfig {
        db_max_connections: 1,
        db_min_connections: 0,
        db_idle_timeout_secs: 0,
    };
    let db = Database::connect_with_pool(&url, &pool, &MIGRATIONS)
        .await
        .unwrap();
    let store = MetricsStore::new(db.clone());
    store.report_settings("w").await.unwrap();
    // What a newer release's migration might do while this replica runs.
    for table in ["sla_target_versions", "business_hours_versions"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN added_later TEXT"
        )))
        .execute(db.pool())
        .await
        .unwrap();
    }
    store.report_settings("w").await.unwrap();
}

/// The export's pages: each conversation closed in the range comes once, in (close, id) order,
/// when several close at the same instant across a page's edge, and from a page that starts
/// after the range's start.
async fn pages_of_closed_conversations_give_each_once_in_order_across_ties(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let store = MetricsStore::new(Database::connect(&url, &MIGRATIONS).await.unwrap());
    let second = 1_000_000;
    let mut events = Vec::new();
    for n in 0..40_u64 {
        let conversation = format!("c{n:02}");
        // Closed in threes at the same instant.
        let closed_at = 2_000 * second + (n / 3) as i64 * second;
        events.push(event(
            events.len() as u64 + 1,
            &Change::Closed {
                conversation,
                contact: format!("contact-{n}"),
                dimensions: Dimensions {
                    closed_by: "CLOSE_SOURCE_USER".into(),
                    ..Dimensions::default()
                },
                opened_at: 1_000 * second,
                closed_at,
                closure: Closure::default(),
                imported: false,
                record: Vec::new(),
            },
        ));
    }
    assert_eq!(store.apply_batch(&events).await.unwrap(), 40);
    // From the fourth instant on: 31 conversations, in pages of 4 (each page's last shares its
    // instant with the next page's first more often than not).
    let (from, to) = (2_003 * second, 3_000 * second);
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .closed_facts("w", from, to, after.clone(), 4)
            .await
            .unwrap();
        got.extend(page.iter().map(|f| (f.closed_at, f.conversation.clone())));
        match page.last() {
            Some(last) if page.len() == 4 => {
                after = Some((last.closed_at, last.conversation.clone()));
            }
            _ => break,
        }
    }
    let want: Vec<(i64, String)> = (9..40_u64)
        .map(|n| (2_000 * second + (n / 3) as i64 * second, format!("c{n:02}")))
        .collect();
    assert_eq!(got, want);
}
