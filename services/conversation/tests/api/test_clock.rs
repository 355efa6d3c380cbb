//! The test clock: auto-close seen without waiting, fired once, also across a restart; and a
//! service that isn't there where the test clock is off.

use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::test_clock_service_client::TestClockServiceClient;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{kinds, spawn_env, start_time};

backend_tests!(
    advancing_the_test_clock_past_the_deadline_auto_closes_once,
    without_the_test_clock_the_service_is_not_served,
);

const MINUTE: Duration = Duration::from_secs(60);

async fn clock_client(
    addr: std::net::SocketAddr,
) -> TestClockServiceClient<charla_testing::auth::TestChannel> {
    TestClockServiceClient::new(charla_testing::connect(format!("http://{addr}")).await)
}

fn advance(by: Duration) -> pb::AdvanceTestClockRequest {
    pb::AdvanceTestClockRequest {
        duration: Some(prost_types::Duration::try_from(by).unwrap()),
    }
}

async fn advancing_the_test_clock_past_the_deadline_auto_closes_once(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    env.conversations()
        .await
        .update_workspace_settings(env.req(pb::UpdateWorkspaceSettingsRequest {
            settings: Some(pb::WorkspaceSettings {
                auto_close_after: Some(prost_types::Duration {
                    seconds: 30 * 60,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["auto_close_after".into()],
            }),
        }))
        .await
        .unwrap();
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    env.reply(&contact).await;

    let mut clock = clock_client(env.conversation_addr).await;
    let now = clock
        .get_test_clock(pb::GetTestClockRequest {})
        .await
        .unwrap()
        .into_inner()
        .now
        .unwrap();
    assert_eq!(now, prost_types::Timestamp::from(start_time()));
    clock
        .advance_test_clock(advance(29 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        env.get(&open.conversation_id).await.status,
        pb::ConversationStatus::Open as i32
    );
    let moved = clock
        .advance_test_clock(advance(2 * MINUTE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.now.unwrap().seconds, now.seconds + 31 * 60);
    // No waiting: the call returns once what fell due is closed.
    let closed = env.get(&open.conversation_id).await;
    assert_eq!(closed.closed_by, pb::CloseSource::AutoClose as i32);
    assert_eq!(closed.closed_at.unwrap().seconds, now.seconds + 30 * 60);

    env.restart_conversation().await;
    let mut clock = clock_client(env.conversation_addr).await;
    clock
        .advance_test_clock(advance(60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        kinds(&env.events().await),
        ["opened", "message", "message", "closed"]
    );
    assert_invalid_field(
        clock
            .set_test_clock(pb::SetTestClockRequest {
                time: Some(prost_types::Timestamp::from(start_time())),
            })
            .await,
        "time",
    );
}

async fn without_the_test_clock_the_service_is_not_served(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    // The contact service of the test runs on the system clock: nothing to control there.
    let mut clock = clock_client(env.contact_addr).await;
    assert_code(
        clock.get_test_clock(pb::GetTestClockRequest {}).await,
        Code::Unimplemented,
    );
    assert_code(
        clock.advance_test_clock(advance(MINUTE)).await,
        Code::Unimplemented,
    );
}
