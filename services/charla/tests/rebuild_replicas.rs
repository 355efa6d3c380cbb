//! RebuildAggregates with several metrics replicas: a rebuild re-reads only the partitions of the
//! replica it reaches, so while another replica consumes it is refused (FAILED_PRECONDITION,
//! naming the count) instead of leaving the other replica's partitions reset; with one replica it
//! runs.

use std::time::Duration;

use charla_proto::charla::metrics::v1 as pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_testing::{Backend, fresh_database_url};
use support::{Replica, channel, ready};
use tonic::Code;

mod support;

async fn rebuild(replica: &Replica) -> Result<(), tonic::Status> {
    MetricsServiceClient::new(channel(replica.url()).await)
        .rebuild_aggregates(pb::RebuildAggregatesRequest::default())
        .await
        .map(drop)
}

/// Rebuilds through `replica` until the answer is what `wanted` accepts (membership changes as
/// replicas take their leases or lose them, within a couple of seconds).
async fn rebuild_until(replica: &Replica, wanted: impl Fn(&Result<(), tonic::Status>) -> bool) {
    let mut last = None;
    for _ in 0..100 {
        let answer = rebuild(replica).await;
        if wanted(&answer) {
            return;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the rebuild never answered as expected; last: {last:?}");
}

fn refused_for_replicas(answer: &Result<(), tonic::Status>) -> bool {
    match answer {
        Err(status) => {
            status.code() == Code::FailedPrecondition
                && status.message().starts_with("2 metrics replicas")
        }
        Ok(()) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_refused_while_another_metrics_replica_consumes() {
    let Some(contact_db) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let conversation_db = fresh_database_url(Backend::Postgres).await.unwrap();
    let metrics_db = fresh_database_url(Backend::Postgres).await.unwrap();
    let mut contact = Replica::new("contact", vec![("CHARLA_DATABASE_URL", contact_db)]);
    let mut conversation = Replica::new(
        "conversation",
        vec![
            ("CHARLA_DATABASE_URL", conversation_db),
            ("CHARLA_CONTACT_URL", contact.url()),
        ],
    );
    let mut metrics = [0, 1].map(|_| {
        Replica::new(
            "metrics",
            vec![
                ("CHARLA_DATABASE_URL", metrics_db.clone()),
                ("CHARLA_CONVERSATION_URL", conversation.url()),
                ("CHARLA_ALLOW_REBUILD", "true".to_owned()),
            ],
        )
    });
    contact.start();
    conversation.start();
    metrics[0].start();
    for replica in [&contact, &conversation, &metrics[0]] {
        ready(replica).await;
    }
    // Alone, the replica rebuilds.
    rebuild_until(&metrics[0], Result::is_ok).await;

    metrics[1].start();
    ready(&metrics[1]).await;
    rebuild_until(&metrics[0], refused_for_replicas).await;
    // Through either replica.
    rebuild_until(&metrics[1], refused_for_replicas).await;

    // Once the other is gone (its leases and membership go with its connection), it runs again.
    metrics[1].kill();
    rebuild_until(&metrics[0], Result::is_ok).await;
}
