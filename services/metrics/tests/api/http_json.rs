//! The metrics service over HTTP/JSON, with a plain HTTP client: reports with their request in
//! the query, the rebuild, errors as google.rpc.Status JSON, the OpenAPI document.

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1::AuthorKind;
use charla_runtime::auth::Role;
use charla_testing::Backend;
use charla_testing::http::{HttpVersion, JsonClient};
use serde_json::json;
use tonic::Code;

use crate::helpers::{MetricsEnv, spawn_env};

/// A quarter-hour edge (a whole number of 15 minutes since the epoch).
const START: u64 = 1_780_000_200;

fn client(env: &MetricsEnv, version: HttpVersion, role: Option<Role>) -> JsonClient {
    let token = role.map(|role| charla_testing::token(role, Some(env.workspace)));
    JsonClient::new(env.metrics_addr, version, token)
}

fn rfc3339(seconds: u64) -> String {
    jiff::Timestamp::from_second(seconds as i64)
        .unwrap()
        .to_string()
}

/// An int64 of the JSON mapping (a string).
fn count(value: &serde_json::Value) -> i64 {
    value.as_str().map_or(0, |text| text.parse().unwrap())
}

#[tokio::test]
async fn reports_take_their_request_from_the_query() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(START);
    let env = spawn_env(Backend::Sqlite, start).await.unwrap();
    for channel in [
        ChannelType::Whatsapp,
        ChannelType::Whatsapp,
        ChannelType::Sms,
    ] {
        let contact = env.new_contact(env.workspace).await;
        env.message(env.workspace, &contact, channel, AuthorKind::Contact, "")
            .await;
    }
    env.settle().await;

    let range = format!(
        "startTime={}&endTime={}&timeZone=UTC&granularity=GRANULARITY_DAY",
        rfc3339(START),
        rfc3339(START + 86_400)
    );
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let http = client(&env, version, Some(Role::Agent));
        let all = http
            .get(&format!("/v1/metrics/conversations?{range}"))
            .await;
        assert_eq!(all.status, 200, "{:?}", all.json);
        assert_eq!(
            count(&all.json["totals"]["openedCount"]),
            3,
            "{:?}",
            all.json
        );

        // A nested repeated field, by dotted name, once or several times.
        let whatsapp = http
            .get(&format!(
                "/v1/metrics/conversations?{range}&filter.channelTypes=CHANNEL_TYPE_WHATSAPP"
            ))
            .await;
        assert_eq!(count(&whatsapp.json["totals"]["openedCount"]), 2);
        let both = http
            .get(&format!(
                "/v1/metrics/conversations?{range}&filter.channel_types=CHANNEL_TYPE_WHATSAPP\
                 &filter.channel_types=CHANNEL_TYPE_SMS&group_by=GROUP_BY_CHANNEL_TYPE"
            ))
            .await;
        assert_eq!(count(&both.json["totals"]["openedCount"]), 3);
        assert_eq!(
            both.json["groups"].as_array().unwrap().len(),
            2,
            "{:?}",
            both.json
        );

        let dashboard = http.get("/v1/metrics/dashboard?timeZone=UTC").await;
        assert_eq!(dashboard.status, 200, "{:?}", dashboard.json);
        assert_eq!(count(&dashboard.json["dashboard"]["openCount"]), 3);
    }

    // POST with no path variable and an empty body (`body: "*"`); an operator's call.
    let service = JsonClient::new(
        env.metrics_addr,
        HttpVersion::Http2,
        Some(charla_testing::token(Role::Service, None)),
    );
    let rebuilt = service.post("/v1/metrics:rebuild", json!({})).await;
    assert_eq!(rebuilt.status, 200, "{:?}", rebuilt.json);
    assert!(
        count(&rebuilt.json["eventsApplied"]) >= 3,
        "{:?}",
        rebuilt.json
    );
    env.stop().await;
}

#[tokio::test]
async fn report_errors_are_google_rpc_status_json() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(START);
    let env = spawn_env(Backend::Sqlite, start).await.unwrap();
    let http = client(&env, HttpVersion::Http1, Some(Role::Agent));
    let range = format!(
        "startTime={}&endTime={}&granularity=GRANULARITY_DAY",
        rfc3339(START),
        rfc3339(START + 86_400)
    );

    let mars = http
        .get(&format!(
            "/v1/metrics/conversations?{range}&timeZone=Mars/Olympus_Mons"
        ))
        .await;
    mars.assert_error(Code::InvalidArgument);
    assert_eq!(mars.bad_request_fields(), ["time_zone"]);

    let yesterday = http
        .get("/v1/metrics/conversations?startTime=yesterday")
        .await;
    yesterday.assert_error(Code::InvalidArgument);
    assert_eq!(yesterday.bad_request_fields(), ["start_time"]);

    let unknown_filter = http
        .get(&format!(
            "/v1/metrics/conversations?{range}&filter.colour=red"
        ))
        .await;
    unknown_filter.assert_error(Code::InvalidArgument);
    assert_eq!(unknown_filter.bad_request_fields(), ["filter.colour"]);

    // The rebuild takes everything in the body, nothing in the query; and needs `service`.
    let query = http.post("/v1/metrics:rebuild?force=true", json!({})).await;
    query.assert_error(Code::InvalidArgument);
    http.post("/v1/metrics:rebuild", json!({}))
        .await
        .assert_error(Code::PermissionDenied);

    client(&env, HttpVersion::Http2, None)
        .get("/v1/metrics/dashboard")
        .await
        .assert_error(Code::Unauthenticated);
    http.get("/v1/metrics").await.assert_error(Code::NotFound);
    env.stop().await;
}

/// Every `google.api.http` route of metrics.proto, and of test_clock.proto (the tests run the
/// service on a test clock, which serves TestClockService).
const ROUTES: [(&str, &str); 9] = [
    ("get", "/v1/metrics/conversations"),
    ("get", "/v1/metrics/dashboard"),
    ("get", "/v1/metrics/leaderboard"),
    ("get", "/v1/metrics/settings"),
    ("patch", "/v1/metrics/settings"),
    ("post", "/v1/metrics:rebuild"),
    ("get", "/v1/testClock"),
    ("post", "/v1/testClock:set"),
    ("post", "/v1/testClock:advance"),
];

#[tokio::test]
async fn the_openapi_document_describes_every_metrics_route_and_no_other() {
    let env = spawn_env(Backend::Sqlite, SystemTime::now()).await.unwrap();
    let document = client(&env, HttpVersion::Http1, None)
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
    let report = &paths["/v1/metrics/conversations"]["get"];
    let names: Vec<&str> = report["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"filter.channel_types"), "{names:?}");
    assert!(names.contains(&"start_time"), "{names:?}");
    env.stop().await;
}

/// Report settings over HTTP: an admin's PATCH with the mask in the query, then a GET; a bad
/// window names its JSON field's proto path.
#[tokio::test]
async fn report_settings_change_over_http() {
    let env = spawn_env(Backend::Sqlite, SystemTime::now()).await.unwrap();
    let admin = client(&env, HttpVersion::Http1, Some(Role::Admin));
    let changed = admin
        .patch(
            "/v1/metrics/settings?updateMask=recontactWindow",
            serde_json::json!({"recontactWindow": "172800s"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    assert_eq!(changed.json["settings"]["recontactWindow"], "172800s");
    let read = client(&env, HttpVersion::Http1, Some(Role::Agent))
        .get("/v1/metrics/settings")
        .await;
    assert_eq!(read.json["settings"]["recontactWindow"], "172800s");
    let refused = admin
        .patch(
            "/v1/metrics/settings?updateMask=recontactWindow",
            serde_json::json!({"recontactWindow": "5400s"}),
        )
        .await;
    refused.assert_error(tonic::Code::InvalidArgument);
    assert_eq!(refused.bad_request_fields(), ["settings.recontact_window"]);
    env.stop().await;
}

/// Read your writes over HTTP: a write's `eventPosition`, given as `minPositions` in the query of
/// a report, is waited for and shows in the report's `positions`.
#[tokio::test]
async fn a_report_over_http_waits_for_the_positions_in_its_query() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(START);
    let env = spawn_env(Backend::Sqlite, start).await.unwrap();
    let contact = env.new_contact(env.workspace).await;
    let recorded = charla_testing::http::JsonClient::new(
        env.conversation_addr,
        HttpVersion::Http1,
        Some(charla_testing::token(Role::Agent, Some(env.workspace))),
    )
    .post(
        "/v1/messages",
        json!({
            "messageId": "wamid.http",
            "contactId": contact,
            "channel": {"channelType": "CHANNEL_TYPE_SMS", "channelId": "sms"},
            "direction": "MESSAGE_DIRECTION_INBOUND",
            "authorKind": "AUTHOR_KIND_CONTACT",
        }),
    )
    .await;
    assert_eq!(recorded.status, 200, "{:?}", recorded.json);
    let position = recorded.json["eventPosition"].clone();
    assert!(position["sequence"].is_string(), "{position:?}");
    // The position's JSON, percent-encoded into the query.
    let encoded: String = position
        .to_string()
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    let query = format!("minPositions={encoded}");
    let http = client(&env, HttpVersion::Http1, Some(Role::Agent));
    let dashboard = http.get(&format!("/v1/metrics/dashboard?{query}")).await;
    assert_eq!(dashboard.status, 200, "{:?}", dashboard.json);
    assert_eq!(count(&dashboard.json["dashboard"]["openCount"]), 1);
    assert_eq!(dashboard.json["positions"], json!([position]));
    let refused = http
        .get("/v1/metrics/dashboard?minPositions=not-json")
        .await;
    assert_eq!(refused.status, 400, "{:?}", refused.json);
    assert!(
        refused.json.to_string().contains("min_positions"),
        "names the field: {:?}",
        refused.json
    );
}
