//! The event stream's partition count is the database's, not each replica's: the first start
//! records it, every replica uses it, and one configured otherwise refuses to start.

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, backend_tests, fresh_database_url};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_configured};

backend_tests!(every_replica_uses_the_partition_count_recorded_at_the_first_start);

fn config_with(database_url: &str, partitions: Option<u32>) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    );
    config.event_partitions = partitions;
    config
}

async fn partition_count(app: &TestApp) -> u32 {
    app.client()
        .await
        .get_contact_event_stream_info(pb::GetContactEventStreamInfoRequest {})
        .await
        .expect("stream info")
        .into_inner()
        .partition_count
}

async fn every_replica_uses_the_partition_count_recorded_at_the_first_start(backend: Backend) {
    let Some(url) = fresh_database_url(backend).await else {
        return;
    };
    let first = spawn_configured(config_with(&url, Some(4)), Uuid::now_v7()).await;
    assert_eq!(partition_count(&first).await, 4);

    // A replica that doesn't say takes the recorded count, not the default of 1.
    let unset = spawn_configured(config_with(&url, None), Uuid::now_v7()).await;
    assert_eq!(partition_count(&unset).await, 4);

    // One configured otherwise would send workspaces to partitions the others don't have.
    let refused = charla_contact::build(
        &config_with(&url, Some(8)),
        ServiceClock::System,
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("a replica configured with 8 partitions refuses to start on a 4-partition log");
    let message = refused.to_string();
    assert!(
        message.contains("CHARLA_EVENT_PARTITIONS is 8") && message.contains("was created with 4"),
        "the error names both counts: {message}"
    );

    // The same count as recorded is fine.
    let same = spawn_configured(config_with(&url, Some(4)), Uuid::now_v7()).await;
    assert_eq!(partition_count(&same).await, 4);
    for app in [first, unset, same] {
        app.stop().await;
    }
}
