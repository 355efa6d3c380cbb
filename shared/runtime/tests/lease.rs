//! Partition leases on PostgreSQL: replicas share partitions fairly, and a replica that goes away
//! leaves its partitions to the others.

use charla_runtime::db::{Database, Migrations};
use charla_runtime::lease::PartitionLeases;
use charla_testing::{Backend, fresh_database_url};

const NOTHING: Migrations = Migrations {
    sqlite: &[],
    postgres: &[],
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_partitions_and_take_over_those_of_a_replica_that_left() {
    let Some(url) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let db = Database::connect(&url, &NOTHING).await.unwrap();
    let mut first = PartitionLeases::new(db.clone(), "test-consumer", 4);
    let mut second = PartitionLeases::new(db.clone(), "test-consumer", 4);

    assert!(first.rebalance().await.unwrap());
    assert_eq!(
        first.held().len(),
        4,
        "alone, a replica takes every partition"
    );

    second.rebalance().await.unwrap();
    assert!(second.held().is_empty(), "all are taken; the second waits");
    first.rebalance().await.unwrap();
    assert_eq!(
        first.held().len(),
        2,
        "with two replicas, each keeps its fair share"
    );
    second.rebalance().await.unwrap();
    assert_eq!(second.held().len(), 2);
    assert!(
        first.held().is_disjoint(second.held()),
        "no partition is read twice"
    );

    drop(first);
    // The first replica's session is gone with it, and its locks with the session.
    let mut taken = 0;
    for _ in 0..50 {
        second.rebalance().await.unwrap();
        taken = second.held().len();
        if taken == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(taken, 4, "the survivor takes over every partition");

    let mut other_consumer = PartitionLeases::new(db, "another-consumer", 4);
    other_consumer.rebalance().await.unwrap();
    assert_eq!(
        other_consumer.held().len(),
        4,
        "consumers don't share leases"
    );
}
