//! Auto-close: deadlines in the database, started and restarted by human replies, cancelled by the
//! contact, fired once, also across a restart.

use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, backend_tests};

use crate::helpers::{TestEnv, eventually, kinds, spawn_env};

backend_tests!(
    a_conversation_closes_when_the_deadline_after_the_last_human_reply_passes,
    a_reply_from_the_contact_cancels_auto_close,
    a_deadline_survives_a_restart_and_fires_once,
);

const MINUTE: Duration = Duration::from_secs(60);

async fn enable_auto_close(env: &TestEnv, after: Duration) {
    env.conversations()
        .await
        .update_workspace_settings(env.req(pb::UpdateWorkspaceSettingsRequest {
            settings: Some(pb::WorkspaceSettings {
                auto_close_after: Some(prost_types::Duration::try_from(after).unwrap()),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["auto_close_after".into()],
            }),
        }))
        .await
        .expect("enable auto-close");
}

async fn wait_closed(env: &TestEnv, id: &str) -> pb::Conversation {
    eventually("the conversation auto-closes", || async {
        env.get(id).await.status == pb::ConversationStatus::Closed as i32
    })
    .await;
    env.get(id).await
}

/// The scheduler scans every 20 ms of real time; a conversation still open after several scans
/// past the point where it would be due has really not been closed.
async fn several_scans() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn a_conversation_closes_when_the_deadline_after_the_last_human_reply_passes(
    backend: Backend,
) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    enable_auto_close(&env, 30 * MINUTE).await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    env.clock.advance(MINUTE);
    env.message(&contact, pb::AuthorKind::Bot, "bot-1")
        .await
        .unwrap();
    assert_eq!(
        env.get(&open.conversation_id).await.auto_close_at,
        None,
        "bots don't start it"
    );
    let replied = env.reply(&contact).await;
    let deadline = replied.auto_close_at.unwrap();
    env.clock.advance(20 * MINUTE);
    let again = env.reply(&contact).await;
    assert_eq!(
        again.auto_close_at.unwrap().seconds,
        deadline.seconds + 20 * 60,
        "restarted"
    );
    env.clock.advance(29 * MINUTE);
    several_scans().await;
    assert_eq!(
        env.get(&open.conversation_id).await.status,
        pb::ConversationStatus::Open as i32
    );
    env.clock.advance(2 * MINUTE);
    let closed = wait_closed(&env, &open.conversation_id).await;
    assert_eq!(closed.closed_by, pb::CloseSource::AutoClose as i32);
    assert_eq!(
        closed.closed_at, again.auto_close_at,
        "closed as of its deadline"
    );
    let events = env.events().await;
    assert_eq!(kinds(&events).iter().filter(|k| **k == "closed").count(), 1);
}

async fn a_reply_from_the_contact_cancels_auto_close(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    enable_auto_close(&env, 30 * MINUTE).await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    env.reply(&contact).await;
    env.clock.advance(10 * MINUTE);
    let answered = env.inbound(&contact).await;
    assert_eq!(answered.auto_close_at, None);
    env.clock.advance(60 * MINUTE);
    several_scans().await;
    assert_eq!(
        env.get(&open.conversation_id).await.status,
        pb::ConversationStatus::Open as i32
    );
}

async fn a_deadline_survives_a_restart_and_fires_once(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    enable_auto_close(&env, 30 * MINUTE).await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    env.reply(&contact).await;
    env.restart_conversation().await;
    env.clock.advance(31 * MINUTE);
    let closed = wait_closed(&env, &open.conversation_id).await;
    assert_eq!(closed.closed_by, pb::CloseSource::AutoClose as i32);
    env.restart_conversation().await;
    several_scans().await;
    let events = env.events().await;
    assert_eq!(kinds(&events), ["opened", "message", "message", "closed"]);
}
