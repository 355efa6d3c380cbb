//! WatchDashboard: the current dashboard at once, then a new one each time the numbers change.

use std::time::Duration;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, assert_invalid_field, backend_tests};

use crate::helpers::spawn_env;

backend_tests!(a_watched_dashboard_is_pushed_when_a_conversation_opens);

async fn next(watch: &mut tonic::Streaming<pb::WatchDashboardResponse>) -> pb::Dashboard {
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a dashboard arrives")
        .unwrap()
        .unwrap()
        .dashboard
        .unwrap()
}

async fn a_watched_dashboard_is_pushed_when_a_conversation_opens(backend: Backend) {
    let Some(env) = spawn_env(backend, std::time::SystemTime::now()).await else {
        return;
    };
    let mut metrics = env.metrics().await;
    let mut watch = metrics
        .watch_dashboard(env.req(pb::WatchDashboardRequest {
            time_zone: "Asia/Kathmandu".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut watch).await;
    assert_eq!((first.open_count, first.opened_today_count), (0, 0));
    assert_eq!(first.time_zone, "Asia/Kathmandu");

    let contact = env.new_contact(env.workspace).await;
    env.message(
        env.workspace,
        &contact,
        ChannelType::Whatsapp,
        conversation_pb::AuthorKind::Contact,
        "",
    )
    .await;
    let pushed = next(&mut watch).await;
    assert_eq!(pushed.open_count, 1);
    assert_eq!(pushed.unassigned_count, 1);
    assert_eq!(pushed.opened_today_count, 1);

    assert_invalid_field(
        metrics
            .watch_dashboard(env.req(pb::WatchDashboardRequest {
                time_zone: "Atlantis".into(),
            }))
            .await,
        "time_zone",
    );
    env.stop().await;
}
