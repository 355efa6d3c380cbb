//! WatchDashboard: the current dashboard at once, then a new one each time the numbers change.

use std::time::Duration;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, assert_invalid_field, backend_tests};

use crate::helpers::spawn_env;

backend_tests!(
    a_watched_dashboard_is_pushed_when_a_conversation_opens,
    every_partition_of_the_conversation_stream_is_counted,
);

/// The conversation service splits its stream in 4; the metrics service learns that from it and
/// reads every partition (workspaces hash to different ones).
async fn every_partition_of_the_conversation_stream_is_counted(backend: Backend) {
    let Some(env) =
        crate::helpers::spawn_env_partitioned(backend, std::time::SystemTime::now(), 4).await
    else {
        return;
    };
    let info = env
        .conversations()
        .await
        .get_conversation_event_stream_info(
            conversation_pb::GetConversationEventStreamInfoRequest {},
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.partition_count, 4);
    let workspaces: Vec<uuid::Uuid> = (0..12).map(|_| uuid::Uuid::now_v7()).collect();
    for workspace in &workspaces {
        let contact = env.new_contact(*workspace).await;
        env.message(
            *workspace,
            &contact,
            ChannelType::Sms,
            conversation_pb::AuthorKind::Contact,
            "",
        )
        .await;
    }
    let mut metrics = env.metrics().await;
    for workspace in &workspaces {
        let mut open = 0;
        for _ in 0..300 {
            let request =
                charla_testing::in_workspace(*workspace, pb::GetDashboardRequest::default());
            open = metrics
                .get_dashboard(request)
                .await
                .unwrap()
                .into_inner()
                .dashboard
                .unwrap()
                .open_count;
            if open == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(open, 1, "workspace {workspace} is counted");
    }
    env.stop().await;
}

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
