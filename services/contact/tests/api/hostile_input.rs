//! Hostile input, case by case: NUL bytes in any text refused by name on both databases,
//! unreadable and oversize requests, extreme times, and megabyte values that errors quote only in
//! part. (services/charla/tests/hostile_input throws random ones at every RPC.)

use std::collections::HashMap;

use charla_proto::charla::contact::v1 as pb;
use charla_testing::raw::{call_raw, call_raw_client_stream};
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, spawn_app, whatsapp};

backend_tests!(
    text_with_a_nul_is_refused_by_name_and_nothing_is_stored,
    an_unreadable_request_is_invalid_argument,
    a_message_over_four_megabytes_is_resource_exhausted,
    an_error_quotes_only_a_short_prefix_of_a_huge_value,
    extreme_custom_field_times_are_refused_by_name,
);

fn text(value: &str) -> pb::CustomFieldValue {
    pb::CustomFieldValue {
        kind: Some(pb::custom_field_value::Kind::TextValue(value.into())),
    }
}

async fn create(app: &TestApp, contact: pb::Contact) -> Result<pb::Contact, tonic::Status> {
    app.client()
        .await
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(contact),
            request_id: String::new(),
        }))
        .await
        .map(|r| r.into_inner().contact.expect("a contact"))
}

async fn text_with_a_nul_is_refused_by_name_and_nothing_is_stored(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ana = app.create("Ana", None).await;
    let mut client = app.client().await;

    let profiles: Vec<(pb::Contact, &str)> = vec![
        (
            pb::Contact {
                first_name: "Su\0sana".into(),
                ..Default::default()
            },
            "contact.first_name",
        ),
        (
            pb::Contact {
                last_name: "\0".into(),
                ..Default::default()
            },
            "contact.last_name",
        ),
        (
            pb::Contact {
                email: "ana\0@example.com".into(),
                ..Default::default()
            },
            "contact.email",
        ),
        (
            pb::Contact {
                phone: "+34600123456\0".into(),
                ..Default::default()
            },
            "contact.phone",
        ),
        (
            pb::Contact {
                language: "es\0".into(),
                ..Default::default()
            },
            "contact.language",
        ),
        (
            pb::Contact {
                custom_fields: HashMap::from([("pl\0an".into(), text("gold"))]),
                ..Default::default()
            },
            "contact.custom_fields[\"pl\\0an\"]",
        ),
        (
            pb::Contact {
                custom_fields: HashMap::from([("plan".into(), text("go\0ld"))]),
                ..Default::default()
            },
            "contact.custom_fields[\"plan\"]",
        ),
        (
            pb::Contact {
                tags: vec!["vip".into(), "le\0ad".into()],
                ..Default::default()
            },
            "contact.tags[1]",
        ),
        (
            pb::Contact {
                identities: vec![whatsapp("5939\0")],
                ..Default::default()
            },
            "contact.identities[0].external_id",
        ),
        (
            pb::Contact {
                identities: vec![pb::ChannelIdentity {
                    channel_id: "wa\0".into(),
                    ..whatsapp("593")
                }],
                ..Default::default()
            },
            "contact.identities[0].channel_id",
        ),
    ];
    for (contact, field) in profiles {
        assert_invalid_field(create(&app, contact).await, field);
    }
    assert_invalid_field(
        client
            .create_contact(app.req(pb::CreateContactRequest {
                contact: Some(pb::Contact::default()),
                request_id: format!("{}\0", uuid::Uuid::now_v7()),
            }))
            .await,
        "request_id",
    );
    assert_invalid_field(
        client
            .get_contact(app.req(pb::GetContactRequest {
                contact_id: format!("{}\0", ana.contact_id),
            }))
            .await,
        "contact_id",
    );
    assert_invalid_field(
        client
            .update_contact(app.req(pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    contact_id: ana.contact_id.clone(),
                    first_name: "An\0a".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["first_name".into()],
                }),
            }))
            .await,
        "contact.first_name",
    );
    assert_invalid_field(
        client
            .resolve_contact(app.req(pb::ResolveContactRequest {
                identity: Some(whatsapp("593\0")),
                profile: None,
            }))
            .await,
        "identity.external_id",
    );
    assert_invalid_field(
        client
            .resolve_contact(app.req(pb::ResolveContactRequest {
                identity: Some(whatsapp("593")),
                profile: Some(pb::Contact {
                    first_name: "\0".into(),
                    ..Default::default()
                }),
            }))
            .await,
        "profile.first_name",
    );
    assert_invalid_field(
        client
            .add_channel_identity(app.req(pb::AddChannelIdentityRequest {
                contact_id: ana.contact_id.clone(),
                identity: Some(pb::ChannelIdentity {
                    channel_id: "\0".into(),
                    ..whatsapp("593")
                }),
            }))
            .await,
        "identity.channel_id",
    );
    for (filter, field) in [
        (
            pb::ListContactsRequest {
                name: "A\0".into(),
                ..Default::default()
            },
            "name",
        ),
        (
            pb::ListContactsRequest {
                email: "\0".into(),
                ..Default::default()
            },
            "email",
        ),
        (
            pb::ListContactsRequest {
                phone: "+34\0".into(),
                ..Default::default()
            },
            "phone",
        ),
        (
            pb::ListContactsRequest {
                tag: "v\0ip".into(),
                ..Default::default()
            },
            "tag",
        ),
        (
            pb::ListContactsRequest {
                page_token: format!("{}\0", ana.contact_id),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        assert_invalid_field(client.list_contacts(app.req(filter)).await, field);
    }

    let stored = client
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(stored, vec![ana], "only Ana, unchanged");
}

async fn an_unreadable_request_is_invalid_argument(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    const GET: &str = "/charla.contact.v1.ContactService/GetContact";
    // Field 1 (contact_id) holding two bytes that are not UTF-8.
    let status = call_raw(
        app.addr,
        GET,
        false,
        vec![0x0a, 0x02, 0xc3, 0x28],
        app.workspace,
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status.get_error_details().bad_request().unwrap().clone();
    assert_eq!(violations.field_violations[0].field, "contact_id");

    // Not protobuf at all.
    for garbage in [vec![0xff; 8], vec![0x0a, 0x7f], vec![0x0b]] {
        assert_code(
            call_raw(app.addr, GET, false, garbage.clone(), app.workspace).await,
            Code::InvalidArgument,
        );
        assert_code(
            call_raw(
                app.addr,
                "/charla.contact.v1.ContactService/StreamContactEvents",
                true,
                garbage.clone(),
                app.workspace,
            )
            .await,
            Code::InvalidArgument,
        );
        let row = pb::ImportContactsRequest {
            external_id: String::new(),
            contact: Some(pb::Contact {
                first_name: "Li".into(),
                ..Default::default()
            }),
        };
        assert_code(
            call_raw_client_stream(
                app.addr,
                "/charla.contact.v1.ContactService/ImportContacts",
                vec![row.encode_to_vec(), garbage],
                app.workspace,
            )
            .await,
            Code::InvalidArgument,
        );
    }
}

async fn a_message_over_four_megabytes_is_resource_exhausted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let huge = pb::Contact {
        first_name: "x".repeat(5 << 20),
        ..Default::default()
    };
    assert_code(create(&app, huge.clone()).await, Code::ResourceExhausted);
    let rows = tokio_stream::iter([pb::ImportContactsRequest {
        external_id: String::new(),
        contact: Some(huge),
    }]);
    assert_code(
        app.client().await.import_contacts(app.req(rows)).await,
        Code::ResourceExhausted,
    );
}

async fn an_error_quotes_only_a_short_prefix_of_a_huge_value(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let megabyte = "K".repeat(1 << 20);
    let short = |status: &tonic::Status| {
        assert!(
            status.message().len() < 1024,
            "{} bytes",
            status.message().len()
        );
        assert!(
            status.details().len() < 1024,
            "{} bytes",
            status.details().len()
        );
    };

    let status = create(
        &app,
        pb::Contact {
            custom_fields: HashMap::from([(megabyte.clone(), text("x"))]),
            ..Default::default()
        },
    )
    .await
    .expect_err("a bad key");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    short(&status);
    let details = status.get_error_details();
    let field = &details.bad_request().unwrap().field_violations[0].field;
    assert!(field.starts_with("contact.custom_fields[\"KKKK"), "{field}");

    let ana = app.create("Ana", None).await;
    let status = app
        .client()
        .await
        .update_contact(app.req(pb::UpdateContactRequest {
            contact: Some(pb::Contact {
                contact_id: ana.contact_id,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![megabyte.clone()],
            }),
        }))
        .await
        .expect_err("not a field");
    short(&status);
    assert_invalid_field(Err::<(), _>(status), "update_mask");

    let status = app
        .client()
        .await
        .list_contacts(app.req(pb::ListContactsRequest {
            email: megabyte,
            ..Default::default()
        }))
        .await
        .expect_err("not an email");
    short(&status);
    assert_invalid_field(Err::<(), _>(status), "email");
}

async fn extreme_custom_field_times_are_refused_by_name(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (seconds, nanos) in [
        (i64::MIN, 0),
        (i64::MAX, 0),
        (253_402_300_800, 0),
        (0, -1),
        (0, i32::MAX),
    ] {
        let when = pb::CustomFieldValue {
            kind: Some(pb::custom_field_value::Kind::TimeValue(
                prost_types::Timestamp { seconds, nanos },
            )),
        };
        assert_invalid_field(
            create(
                &app,
                pb::Contact {
                    custom_fields: HashMap::from([("when".into(), when)]),
                    ..Default::default()
                },
            )
            .await,
            "contact.custom_fields[\"when\"]",
        );
    }
}
