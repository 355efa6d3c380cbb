//! Health for orchestrators: the service's names, and the separate freshness name, through gRPC.

use charla_metrics::consumer::FRESHNESS;
use charla_testing::{Backend, backend_tests};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::spawn_env;

backend_tests!(a_caught_up_replica_is_serving_and_fresh);

async fn a_caught_up_replica_is_serving_and_fresh(backend: Backend) {
    let Some(env) = spawn_env(backend, std::time::SystemTime::now()).await else {
        return;
    };
    env.settle().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", env.metrics_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for name in ["", "charla.metrics.v1.MetricsService", FRESHNESS] {
        let status = health
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("`{name}`: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "`{name}`");
    }
    env.stop().await;
}
