//! The conversation service over HTTP/JSON, with a plain HTTP client: messages, reads and closes
//! at their `google.api.http` routes, errors as google.rpc.Status JSON, the OpenAPI document.

use charla_runtime::auth::Role;
use charla_testing::Backend;
use charla_testing::http::{HttpVersion, JsonClient};
use serde_json::json;
use tonic::Code;

use crate::helpers::{TestEnv, spawn_env};

fn client(env: &TestEnv, version: HttpVersion, role: Option<Role>) -> JsonClient {
    let token = role.map(|role| charla_testing::token(role, Some(env.workspace)));
    JsonClient::new(env.conversation_addr, version, token)
}

#[tokio::test]
async fn a_conversation_is_opened_read_listed_and_closed_over_http_json() {
    let env = spawn_env(Backend::Sqlite).await.unwrap();
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let http = client(&env, version, Some(Role::Agent));
        let contact = env.new_contact().await;

        // POST with the whole request as the body (`body: "*"`).
        let recorded = http
            .post(
                "/v1/messages",
                json!({
                    "messageId": format!("wamid.{}", version as u8),
                    "contactId": contact,
                    "channel": {"channelType": "CHANNEL_TYPE_WHATSAPP", "channelId": "wa-main"},
                    "direction": "MESSAGE_DIRECTION_INBOUND",
                    "authorKind": "AUTHOR_KIND_CONTACT",
                }),
            )
            .await;
        assert_eq!(recorded.status, 200, "{:?}", recorded.json);
        assert_eq!(recorded.json["openedConversation"], true);
        let id = recorded.json["conversation"]["conversationId"]
            .as_str()
            .unwrap()
            .to_owned();

        // GET with a path variable, two routes to the same conversation.
        let read = http.get(&format!("/v1/conversations/{id}")).await;
        assert_eq!(read.status, 200, "{:?}", read.json);
        assert_eq!(
            read.json["conversation"]["status"],
            "CONVERSATION_STATUS_OPEN"
        );
        let open = http
            .get(&format!("/v1/contacts/{contact}/openConversation"))
            .await;
        assert_eq!(open.json["conversation"]["conversationId"], id.as_str());

        // GET with filters in the query, enums by name.
        let listed = http
            .get(&format!(
                "/v1/conversations?contactId={contact}&status=CONVERSATION_STATUS_OPEN&page_size=5"
            ))
            .await;
        assert_eq!(listed.status, 200, "{:?}", listed.json);
        assert_eq!(
            listed.json["conversations"][0]["conversationId"],
            id.as_str()
        );

        // POST with a path variable and a body: the close, as gRPC sees it afterwards.
        let closed = http
            .post(
                &format!("/v1/conversations/{id}:close"),
                json!({"source": "CLOSE_SOURCE_USER", "actorId": "agent-ana"}),
            )
            .await;
        assert_eq!(closed.status, 200, "{:?}", closed.json);
        assert_eq!(
            closed.json["conversation"]["status"],
            "CONVERSATION_STATUS_CLOSED"
        );
        let over_grpc = env
            .conversations()
            .await
            .get_conversation(env.req(
                charla_proto::charla::conversation::v1::GetConversationRequest {
                    conversation_id: id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .conversation
            .unwrap();
        assert_eq!(over_grpc.closed_by_id, "agent-ana");
        let none_open = http
            .get(&format!(
                "/v1/conversations?contactId={contact}&status=CONVERSATION_STATUS_OPEN"
            ))
            .await;
        assert_eq!(none_open.json["conversations"], json!(null));
    }
}

#[tokio::test]
async fn conversation_errors_are_google_rpc_status_json() {
    let env = spawn_env(Backend::Sqlite).await.unwrap();
    let http = client(&env, HttpVersion::Http2, Some(Role::Agent));

    let bad = http.get("/v1/conversations/42").await;
    bad.assert_error(Code::InvalidArgument);
    assert_eq!(bad.bad_request_fields(), ["conversation_id"]);

    let bad_enum = http.get("/v1/conversations?status=SOMEWHAT_OPEN").await;
    bad_enum.assert_error(Code::InvalidArgument);
    assert_eq!(bad_enum.bad_request_fields(), ["status"]);

    // A field the path sets can't be set again in the query.
    let twice = http
        .get("/v1/conversations/0190f5a2-5a6e-7000-8000-0000000000ff?conversationId=x")
        .await;
    twice.assert_error(Code::InvalidArgument);
    assert_eq!(twice.bad_request_fields(), ["conversation_id"]);

    // One field by both its names.
    let both_names = http.get("/v1/conversations?pageSize=1&page_size=2").await;
    both_names.assert_error(Code::InvalidArgument);
    assert_eq!(both_names.bad_request_fields(), ["page_size"]);

    let missing = http
        .get("/v1/conversations/0190f5a2-5a6e-7000-8000-0000000000ff")
        .await;
    missing.assert_error(Code::NotFound);

    client(&env, HttpVersion::Http1, None)
        .post("/v1/messages", json!({}))
        .await
        .assert_error(Code::Unauthenticated);

    // The test clock needs a service token.
    http.get("/v1/testClock")
        .await
        .assert_error(Code::PermissionDenied);
    let service = JsonClient::new(
        env.conversation_addr,
        HttpVersion::Http1,
        Some(charla_testing::token(Role::Service, None)),
    );
    let clock = service.get("/v1/testClock").await;
    assert_eq!(clock.status, 200, "{:?}", clock.json);
    assert!(clock.json["now"].as_str().unwrap().ends_with('Z'));

    http.get("/v1/contacts").await.assert_error(Code::NotFound);
    http.delete("/v1/conversations")
        .await
        .assert_error(Code::NotFound);
}

/// Every `google.api.http` route of conversation.proto, and of test_clock.proto (the tests run
/// the service on a test clock, which serves TestClockService).
const ROUTES: [(&str, &str); 16] = [
    ("post", "/v1/conversations"),
    ("post", "/v1/conversations/{conversation_id}:close"),
    ("post", "/v1/messages"),
    ("post", "/v1/conversations:welcome"),
    ("post", "/v1/conversations/{conversation_id}:assign"),
    ("post", "/v1/conversations/{conversation_id}:unassign"),
    ("get", "/v1/conversations/{conversation_id}"),
    ("get", "/v1/contacts/{contact_id}/openConversation"),
    ("get", "/v1/conversations"),
    ("get", "/v1/conversations/{conversation_id}/events"),
    ("get", "/v1/conversationSettings"),
    ("patch", "/v1/conversationSettings"),
    ("get", "/v1/conversations:eventStreamInfo"),
    ("get", "/v1/testClock"),
    ("post", "/v1/testClock:set"),
    ("post", "/v1/testClock:advance"),
];

#[tokio::test]
async fn the_openapi_document_describes_every_conversation_route_and_no_other() {
    let env = spawn_env(Backend::Sqlite).await.unwrap();
    let document = client(&env, HttpVersion::Http2, None)
        .get("/openapi.json")
        .await;
    assert_eq!(document.status, 200);
    let paths = document.json["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, ROUTES.len(), "{:?}", paths.keys());
    let close = &paths["/v1/conversations/{conversation_id}:close"]["post"];
    assert_eq!(close["parameters"][0]["name"], "conversation_id");
    assert_eq!(close["parameters"][0]["in"], "path");
    assert!(
        close["description"]
            .as_str()
            .unwrap()
            .starts_with("CloseConversation"),
        "the proto comment: {close:?}"
    );
}

/// A conversation's own events at their GET route, in order, paged by the query.
#[tokio::test]
async fn a_conversations_events_are_listed_over_http_json() {
    let env = spawn_env(Backend::Sqlite).await.unwrap();
    let http = client(&env, HttpVersion::Http1, Some(Role::Agent));
    let contact = env.new_contact().await;
    let id = env.inbound(&contact).await.conversation_id;
    env.reply(&contact).await;
    let first = http
        .get(&format!("/v1/conversations/{id}/events?pageSize=2"))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let events = first.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0]["opened"].is_object(), "{events:?}");
    let token = first.json["nextPageToken"].as_str().unwrap();
    let rest = http
        .get(&format!("/v1/conversations/{id}/events?pageToken={token}"))
        .await;
    assert_eq!(rest.json["events"].as_array().unwrap().len(), 1);
    assert!(rest.json["events"][0]["messageRecorded"].is_object());
    assert!(rest.json.get("nextPageToken").is_none(), "{:?}", rest.json);
}
