//! `charla demo` against a real `charla up`: the month it makes (uneven days, evenings, some
//! conversations still open at the end) is history the conversation service accepts, every row.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::auth::Role;
use charla_testing::in_workspace;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops `charla up` when the test ends, passing or not.
struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_history_is_imported_whole_with_conversations_still_waiting_on_the_team() {
    let data_dir =
        std::env::temp_dir().join(format!("charla-demo-{}", uuid::Uuid::now_v7().simple()));
    let [contact, conversation, metrics] = [free_port(), free_port(), free_port()];
    let auth = [
        (
            "CHARLA_AUTH_JWKS",
            charla_testing::auth::test_jwks_path().display().to_string(),
        ),
        (
            "CHARLA_AUTH_AUDIENCE",
            charla_testing::auth::TEST_AUDIENCE.to_owned(),
        ),
    ];
    let _up = Up(Command::new(env!("CARGO_BIN_EXE_charla"))
        .envs(auth.clone())
        .args(["up", "--admin-port-offset", "0", "--data-dir"])
        .arg(&data_dir)
        .args(["--contact-port", &contact.to_string()])
        .args(["--conversation-port", &conversation.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start charla up"));
    let conversations_url = format!("http://127.0.0.1:{conversation}");
    let mut conversations = None;
    for _ in 0..300 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(conversations_url.clone())
            .unwrap()
            .connect()
            .await
        {
            conversations = Some(ConversationServiceClient::new(
                charla_testing::auth::with_service_token(channel),
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut conversations = conversations.expect("charla up listens");

    let workspace = uuid::Uuid::now_v7();
    let demo = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_charla"))
            .env(
                "CHARLA_TOKEN",
                charla_testing::auth::token(Role::Admin, Some(workspace)),
            )
            .args(["demo", "--days", "7", "--per-day", "30"])
            .args(["--workspace", &workspace.to_string()])
            .args(["--contact-url", &format!("http://127.0.0.1:{contact}")])
            .args(["--conversation-url", &conversations_url])
            .args(["--metrics-url", &format!("http://127.0.0.1:{metrics}")])
            .output()
            .expect("run charla demo")
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert!(
        demo.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(said.contains(" 0 refused"), "{said}");

    let open = conversations
        .list_conversations(in_workspace(
            workspace,
            pb::ListConversationsRequest {
                status: pb::ConversationStatus::Open as i32,
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversations;
    let waiting = open
        .iter()
        .filter(|c| c.imported && c.last_message_at == c.last_inbound_message_at)
        .count();
    assert!(
        waiting >= 5,
        "{waiting} of {} open conversations wait on the team",
        open.len()
    );
    assert!(
        open.iter()
            .all(|c| c.auto_close_at.is_none() || c.last_message_at != c.last_inbound_message_at),
        "a conversation the contact wrote last has no auto-close pending"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
