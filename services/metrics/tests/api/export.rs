//! The export's two assignee columns: "Assignee" (at close) and "Last Assignee".

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, backend_tests};

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(the_export_tells_the_assignee_at_close_from_the_last_assignee);

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

/// Opens a conversation, assigns each user of `users` in turn (team `sales`), unassigns the user
/// when `unassign_before_close`, and closes it; returns its id.
async fn conversation(env: &MetricsEnv, users: &[&str], unassign_before_close: bool) -> String {
    let contact = env.new_contact(env.workspace).await;
    let id = env
        .message(
            env.workspace,
            &contact,
            ChannelType::Whatsapp,
            conversation_pb::AuthorKind::Contact,
            "",
        )
        .await
        .unwrap()
        .conversation_id;
    let mut client = env.conversations().await;
    for user in users {
        client
            .assign_conversation(env.req(conversation_pb::AssignConversationRequest {
                conversation_id: id.clone(),
                assignee_user_id: (*user).into(),
                team_id: "sales".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    if unassign_before_close {
        client
            .unassign_conversation(env.req(conversation_pb::UnassignConversationRequest {
                conversation_id: id.clone(),
                clear_assignee_user: true,
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    client
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: id.clone(),
            source: conversation_pb::CloseSource::User as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    id
}

async fn the_export_tells_the_assignee_at_close_from_the_last_assignee(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    let handed_back = conversation(&env, &["ana", "beto"], true).await;
    let kept = conversation(&env, &["ana", "beto"], false).await;
    let never = conversation(&env, &[], false).await;
    env.settle().await;
    let mut export = env
        .metrics()
        .await
        .export_conversations(env.req(pb::ExportConversationsRequest {
            start_time: Some(start().into()),
            end_time: Some((start() + Duration::from_secs(3600)).into()),
            filter: None,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut columns = Vec::new();
    while let Some(message) = export.message().await.unwrap() {
        let row = message.row.unwrap();
        columns.push((
            row.conversation_id,
            row.first_assignee_user_id,
            row.assignee_user_id,
            row.last_assignee_user_id,
            row.team_id,
        ));
    }
    let row = |id: &str, first: &str, at_close: &str, last: &str, team: &str| {
        (
            id.to_owned(),
            first.into(),
            at_close.into(),
            last.into(),
            team.into(),
        )
    };
    assert_eq!(
        columns,
        [
            row(&handed_back, "ana", "", "beto", "sales"),
            row(&kept, "ana", "beto", "beto", "sales"),
            row(&never, "", "", "", ""),
        ],
        "(id, first assignee, assignee at close, last assignee, team at close)"
    );
    env.stop().await;
}
