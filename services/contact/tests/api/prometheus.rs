//! `GET /metrics` on the admin listener: what the calls did, counted and timed by method and code,
//! and the service's own gauges; read as a scraper reads them.

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::config::RuntimeConfig;
use charla_testing::Backend;
use charla_testing::prometheus::{http_get, parse_exposition, value_of};

use crate::helpers::spawn_configured;

async fn spawn_with_admin(backend: Backend) -> Option<crate::helpers::TestApp> {
    let url = charla_testing::fresh_database_url(backend).await?;
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    Some(spawn_configured(config, uuid::Uuid::now_v7()).await)
}

async fn metrics_counts_calls_by_method_and_code_and_reports_the_event_head(backend: Backend) {
    let Some(app) = spawn_with_admin(backend).await else {
        return;
    };
    let admin = app.admin_addr.expect("an admin listener");
    app.create("Ana", None).await;
    app.create("Bea", None).await;
    let invalid = app
        .client()
        .await
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: "nope".into(),
        }))
        .await;
    assert_eq!(invalid.unwrap_err().code(), tonic::Code::InvalidArgument);

    let partitions = app
        .client()
        .await
        .get_contact_event_stream_info(pb::GetContactEventStreamInfoRequest {})
        .await
        .expect("stream info")
        .into_inner()
        .partition_count;
    let partition = charla_runtime::event_log::partition_of(
        charla_runtime::workspace::WorkspaceId::new(app.workspace),
        partitions,
    )
    .to_string();
    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let samples = parse_exposition(&text);
    let create = [
        ("rpc_system", "grpc"),
        ("rpc_service", "charla.contact.v1.ContactService"),
        ("rpc_method", "CreateContact"),
        ("rpc_grpc_status_code", "0"),
    ];
    assert_eq!(
        value_of(&samples, "rpc_server_requests_total", &create),
        Some(2.0)
    );
    assert_eq!(
        value_of(&samples, "rpc_server_duration_seconds_count", &create),
        Some(2.0)
    );
    let sum = value_of(&samples, "rpc_server_duration_seconds_sum", &create).unwrap();
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    let all_buckets = [create.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        value_of(&samples, "rpc_server_duration_seconds_bucket", &all_buckets),
        Some(2.0)
    );
    assert_eq!(
        value_of(
            &samples,
            "rpc_server_requests_total",
            &[("rpc_method", "GetContact"), ("rpc_grpc_status_code", "3")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &samples,
            "charla_event_head",
            &[("stream", "contact"), ("partition", partition.as_str())]
        ),
        Some(2.0),
        "two contacts created, two events"
    );
    let open = value_of(&samples, "charla_db_pool_connections", &[]).unwrap();
    let idle = value_of(&samples, "charla_db_pool_idle_connections", &[]).unwrap();
    assert!(open >= 1.0 && idle <= open, "{open} open, {idle} idle");

    let (status, _) = http_get(admin, "/nothing-here").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_calls_and_report_event_heads_on_sqlite() {
    metrics_counts_calls_by_method_and_code_and_reports_the_event_head(Backend::Sqlite).await;
}

#[tokio::test]
async fn metrics_count_calls_and_report_event_heads_on_postgres() {
    metrics_counts_calls_by_method_and_code_and_reports_the_event_head(Backend::Postgres).await;
}

#[tokio::test]
async fn without_an_admin_address_there_is_no_admin_listener() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    assert_eq!(app.admin_addr, None);
    app.stop().await;
}
