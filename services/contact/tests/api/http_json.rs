//! The contact service over HTTP/JSON, with a plain HTTP client: the `google.api.http` routes on
//! the gRPC port, over HTTP/1.1 and HTTP/2, errors as google.rpc.Status JSON, and the OpenAPI
//! document of this service's routes.

use charla_runtime::auth::Role;
use charla_testing::Backend;
use charla_testing::http::{HttpVersion, JsonClient, Method};
use serde_json::json;
use tonic::Code;

use crate::helpers::{TestApp, spawn_app};

fn client(app: &TestApp, version: HttpVersion, role: Option<Role>) -> JsonClient {
    let token = role.map(|role| charla_testing::token(role, Some(app.workspace)));
    JsonClient::new(app.addr, version, token)
}

#[tokio::test]
async fn contacts_are_created_read_listed_and_changed_over_http_json() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let http = client(&app, version, Some(Role::Agent));
        let external_id = format!("59399{}", version as u8);

        // POST with a body that is one field of the request (`body: "contact"`).
        let created = http
            .post(
                "/v1/contacts",
                json!({
                    "firstName": "Susana",
                    "email": format!("susana{}@example.com", version as u8),
                    "identities": [{"channelType": "CHANNEL_TYPE_WHATSAPP", "channelId": "wa-main", "externalId": external_id}],
                }),
            )
            .await;
        assert_eq!(created.status, 200, "{:?}", created.json);
        assert_eq!(created.content_type.as_deref(), Some("application/json"));
        let contact = &created.json["contact"];
        let id = contact["contactId"].as_str().expect("an id").to_owned();
        assert_eq!(
            contact["identities"][0]["channelType"],
            "CHANNEL_TYPE_WHATSAPP"
        );

        // GET with a path variable; the same contact as gRPC sees it.
        let read = http.get(&format!("/v1/contacts/{id}")).await;
        assert_eq!(read.status, 200, "{:?}", read.json);
        assert_eq!(read.json["contact"]["firstName"], "Susana");
        let over_grpc = app
            .client()
            .await
            .get_contact(
                app.req(charla_proto::charla::contact::v1::GetContactRequest {
                    contact_id: id.clone(),
                }),
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!(over_grpc.contact.unwrap().first_name, "Susana");

        // POST with the whole request as the body: the ids found, in order.
        let batch = http
            .post(
                "/v1/contacts:batchGet",
                json!({"contactIds": [uuid::Uuid::now_v7().to_string(), id.clone()]}),
            )
            .await;
        assert_eq!(batch.status, 200, "{:?}", batch.json);
        let found = batch.json["contacts"].as_array().expect("contacts");
        assert_eq!(found.len(), 1, "{:?}", batch.json);
        assert_eq!(found[0]["contactId"], id.as_str());

        // POST with a path variable and a body.
        let added = http
            .post(
                &format!("/v1/contacts/{id}/identities"),
                json!({"channelType": "CHANNEL_TYPE_TELEGRAM", "channelId": "bot", "externalId": format!("77{}", version as u8)}),
            )
            .await;
        assert_eq!(added.status, 200, "{:?}", added.json);
        assert_eq!(
            added.json["contact"]["identities"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        // PATCH: a nested path variable, the body one field, the field mask in the query.
        let patched = http
            .patch(
                &format!("/v1/contacts/{id}?updateMask=firstName,tags"),
                json!({"firstName": "Susi", "tags": ["vip"]}),
            )
            .await;
        assert_eq!(patched.status, 200, "{:?}", patched.json);
        assert_eq!(patched.json["contact"]["firstName"], "Susi");
        assert_eq!(patched.json["contact"]["tags"], json!(["vip"]));

        // POST with a custom verb and no body at all.
        let blocked = http
            .post(&format!("/v1/contacts/{id}:block"), json!({}))
            .await;
        assert_eq!(blocked.status, 200, "{:?}", blocked.json);
        assert_eq!(blocked.json["contact"]["status"], "CONTACT_STATUS_BLOCKED");
    }

    // GET with query parameters, by proto or JSON name: filters and the page size.
    let http = client(&app, HttpVersion::Http1, Some(Role::Agent));
    let listed = http.get("/v1/contacts?tag=vip&page_size=1").await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(listed.json["contacts"].as_array().unwrap().len(), 1);
    let next = listed.json["nextPageToken"]
        .as_str()
        .expect("a second page");
    let second = http
        .get(&format!("/v1/contacts?tag=vip&pageSize=1&pageToken={next}"))
        .await;
    assert_eq!(second.json["contacts"].as_array().unwrap().len(), 1);
    assert_ne!(
        second.json["contacts"][0]["contactId"],
        listed.json["contacts"][0]["contactId"]
    );
    let by_email = http.get("/v1/contacts?email=susana1%40example.com").await;
    assert_eq!(by_email.json["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(by_email.json["contacts"][0]["email"], "susana1@example.com");

    // POST with `body: "*"`: the whole request in the body.
    let resolved = http
        .post(
            "/v1/contacts:resolve",
            json!({"identity": {"channelType": "CHANNEL_TYPE_WHATSAPP", "channelId": "wa-main", "externalId": "593990"}}),
        )
        .await;
    assert_eq!(resolved.status, 200, "{:?}", resolved.json);
    assert_eq!(resolved.json["contact"]["firstName"], "Susi");
    app.stop().await;
}

#[tokio::test]
async fn http_json_errors_are_google_rpc_status_with_the_http_status_of_their_code() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let http = client(&app, version, Some(Role::Agent));

        // A bad id: the service's own validation, as gRPC would say it.
        let bad = http.get("/v1/contacts/not-a-uuid").await;
        assert_eq!(bad.status, 400, "{:?}", bad.json);
        assert_eq!(bad.json["code"], 3);
        assert!(!bad.json["message"].as_str().unwrap().is_empty());
        assert_eq!(bad.bad_request_fields(), ["contact_id"], "{:?}", bad.json);

        // A query parameter that is not a value of its field, and one that is no field at all.
        let bad_size = http.get("/v1/contacts?page_size=many").await;
        assert_eq!(bad_size.status, 400);
        assert_eq!(
            bad_size.bad_request_fields(),
            ["page_size"],
            "{:?}",
            bad_size.json
        );
        let unknown = http.get("/v1/contacts?colour=red").await;
        assert_eq!(unknown.status, 400);
        assert_eq!(unknown.bad_request_fields(), ["colour"]);

        // A body that is not JSON, or JSON without a content type saying so.
        let garbage = http
            .send_raw(Method::POST, "/v1/contacts", Some("application/json"), b"{")
            .await;
        assert_eq!(garbage.status, 400, "{:?}", garbage.json);
        assert_eq!(garbage.bad_request_fields(), ["contact"]);
        let form = http
            .send_raw(
                Method::POST,
                "/v1/contacts",
                Some("application/x-www-form-urlencoded"),
                b"firstName=x",
            )
            .await;
        assert_eq!(form.status, 400);
        assert_eq!(form.bad_request_fields(), ["content-type"]);

        // A body over the 4 MiB a gRPC message may have.
        let mut huge = b"{\"firstName\": \"".to_vec();
        huge.resize(4 * 1024 * 1024 + 16, b'a');
        huge.extend_from_slice(b"\"}");
        let too_big = http
            .send_raw(
                Method::POST,
                "/v1/contacts",
                Some("application/json"),
                &huge,
            )
            .await;
        too_big.assert_error(Code::ResourceExhausted);

        // JSON the mapping refuses: the error names the field, however deep.
        let number = http.post("/v1/contacts", json!({"firstName": 5})).await;
        number.assert_error(Code::InvalidArgument);
        assert_eq!(number.bad_request_fields(), ["contact.first_name"]);
        let stranger = http.post("/v1/contacts", json!({"nickname": "x"})).await;
        assert_eq!(stranger.bad_request_fields(), ["contact.nickname"]);
        let deep = http
            .post(
                "/v1/contacts:resolve",
                json!({"identity": {"channelId": "wa", "channelType": "CHANNEL_TYPE_CARRIER_PIGEON"}}),
            )
            .await;
        deep.assert_error(Code::InvalidArgument);
        assert_eq!(deep.bad_request_fields(), ["identity.channel_type"]);

        // An unknown contact: NOT_FOUND with its ResourceInfo.
        let missing = http
            .get("/v1/contacts/0190f5a2-5a6e-7000-8000-0000000000ff")
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json["code"], 5);
        assert_eq!(
            missing
                .details("type.googleapis.com/google.rpc.ResourceInfo")
                .len(),
            1,
            "{:?}",
            missing.json
        );

        // No token: UNAUTHENTICATED, with the reason.
        let anonymous = client(&app, version, None).get("/v1/contacts").await;
        assert_eq!(anonymous.status, 401, "{:?}", anonymous.json);
        assert_eq!(anonymous.json["code"], 16);
        let info = anonymous.details("type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(info[0]["reason"], "NO_TOKEN", "{:?}", anonymous.json);

        // A role that may not make the call: PERMISSION_DENIED.
        let agent_delete = http
            .delete("/v1/contacts/0190f5a2-5a6e-7000-8000-0000000000ff")
            .await;
        assert_eq!(agent_delete.status, 403, "{:?}", agent_delete.json);

        // No such route, and a route of another service.
        for path in ["/v1/nothing", "/v1/conversations"] {
            let nowhere = http.get(path).await;
            assert_eq!(nowhere.status, 404, "{path}: {:?}", nowhere.json);
            assert_eq!(nowhere.json["code"], 5);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_json_call_past_the_request_timeout_answers_deadline_exceeded_as_json() {
    use sqlx::Connection;
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = charla_runtime::config::RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    config.request_timeout_secs = 1;
    let app = crate::helpers::spawn_configured(config, uuid::Uuid::now_v7()).await;
    // A writer holding the database: the create waits past the timeout.
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let stuck = client(&app, HttpVersion::Http1, Some(Role::Agent))
        .post("/v1/contacts", json!({"firstName": "Stuck"}))
        .await;
    stuck.assert_error(Code::DeadlineExceeded);
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
}

/// Every `google.api.http` route of contact.proto.
const CONTACT_ROUTES: [(&str, &str); 13] = [
    ("post", "/v1/contacts"),
    ("get", "/v1/contacts/{contact_id}"),
    ("post", "/v1/contacts:batchGet"),
    ("patch", "/v1/contacts/{contact.contact_id}"),
    ("delete", "/v1/contacts/{contact_id}"),
    ("get", "/v1/contacts"),
    ("post", "/v1/contacts/{contact_id}/identities"),
    ("post", "/v1/contacts/{contact_id}/identities:remove"),
    ("post", "/v1/contacts:resolve"),
    ("post", "/v1/contacts/{contact_id}:block"),
    ("post", "/v1/contacts/{contact_id}:unblock"),
    ("post", "/v1/contacts:merge"),
    ("get", "/v1/contacts:eventStreamInfo"),
];

#[tokio::test]
async fn the_openapi_document_describes_every_contact_route_and_no_other() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let document = client(&app, HttpVersion::Http1, None)
        .get("/openapi.json")
        .await;
    assert_eq!(document.status, 200);
    let openapi = &document.json;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = openapi["paths"].as_object().unwrap();
    for (method, path) in CONTACT_ROUTES {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is missing");
        assert!(operation["responses"]["200"].is_object(), "{method} {path}");
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        CONTACT_ROUTES.len(),
        "only the contact routes: {:?}",
        paths.keys()
    );

    // Parameters and bodies come from the request messages.
    let list = &paths["/v1/contacts"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["page_size", "page_token", "name", "email", "phone", "tag"]
    );
    let create = &paths["/v1/contacts"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/charla.contact.v1.Contact"
    );
    let schemas = openapi["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("google.rpc.Status"));
    assert_eq!(
        schemas["charla.contact.v1.Contact"]["properties"]["contactId"]["type"],
        "string"
    );
    app.stop().await;
}
