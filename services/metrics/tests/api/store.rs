//! The store's exactly-once application: a redelivered event, or one delivered again after a
//! crash between two events, changes nothing.

use charla_metrics::domain::{Change, Closure, Dimensions};
use charla_metrics::store::{MIGRATIONS, MetricsStore};
use charla_runtime::db::Database;
use charla_testing::{Backend, backend_tests, fresh_database_url};

backend_tests!(a_redelivered_event_is_applied_once);

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

async fn a_redelivered_event_is_applied_once(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let store = MetricsStore::new(Database::connect(&url, &MIGRATIONS).await.unwrap());
    assert!(store.apply("w", 0, 1, &opened("c1")).await.unwrap());
    assert!(
        !store.apply("w", 0, 1, &opened("c1")).await.unwrap(),
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
    assert!(store.apply("w", 0, 2, &closed).await.unwrap());
    // A consumer that crashed after committing event 2 but before learning so gets it again.
    assert!(!store.apply("w", 0, 2, &closed).await.unwrap());
    assert!(
        !store.apply("w", 0, 1, &opened("c1")).await.unwrap(),
        "an older event is not re-applied"
    );
    let opened_rows = store.opened_rows("w", 0, 2_000_000_000).await.unwrap();
    let total_opened: i64 = opened_rows.iter().map(|(_, _, count)| count).sum();
    assert_eq!(total_opened, 1);
    let closed_rows = store.closed_rows("w", 0, 2_000_000_000).await.unwrap();
    assert_eq!(closed_rows.len(), 1);
    assert_eq!(closed_rows[0].2.closed, 1);
    assert_eq!(store.live_counts("w").await.unwrap().open, 0);
    assert_eq!(store.cursor().positions().await.unwrap(), [(0, 2)]);
}
