//! Bad input: every refusal names its field and code, and changes nothing.

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(
    a_call_without_a_workspace_is_unauthenticated,
    malformed_and_missing_ids_name_their_field,
    unknown_ids_are_not_found,
    profile_fields_are_checked_and_named,
    identities_are_checked_and_named,
    update_masks_are_checked,
    page_sizes_and_tokens_are_checked,
);

async fn a_call_without_a_workspace_is_unauthenticated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    assert_code(
        client
            .list_contacts(charla_testing::with_token(
                "not-a-jwt",
                pb::ListContactsRequest::default(),
            ))
            .await,
        Code::Unauthenticated,
    );
    // A service token acts in the workspace `x-workspace-id` names, which must be one.
    let mut request = tonic::Request::new(pb::ListContactsRequest::default());
    request
        .metadata_mut()
        .insert("x-workspace-id", "acme".parse().unwrap());
    assert_invalid_field(client.list_contacts(request).await, "x-workspace-id");
    assert_invalid_field(
        client
            .list_contacts(tonic::Request::new(pb::ListContactsRequest::default()))
            .await,
        "x-workspace-id",
    );
}

async fn malformed_and_missing_ids_name_their_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    for bad in ["", "not-a-uuid", "123"] {
        assert_invalid_field(
            client
                .get_contact(app.req(pb::GetContactRequest {
                    contact_id: bad.into(),
                }))
                .await,
            "contact_id",
        );
    }
    assert_invalid_field(
        client
            .merge_contacts(app.req(pb::MergeContactsRequest {
                primary_contact_id: uuid::Uuid::now_v7().to_string(),
                secondary_contact_id: "x".into(),
                ..Default::default()
            }))
            .await,
        "secondary_contact_id",
    );
    assert_invalid_field(
        client
            .create_contact(app.req(pb::CreateContactRequest {
                contact: Some(pb::Contact::default()),
                request_id: "again".into(),
            }))
            .await,
        "request_id",
    );
    assert_invalid_field(
        client
            .create_contact(app.req(pb::CreateContactRequest::default()))
            .await,
        "contact",
    );
}

async fn unknown_ids_are_not_found(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_code(
        client
            .get_contact(app.req(pb::GetContactRequest {
                contact_id: unknown.clone(),
            }))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .block_contact(app.req(pb::BlockContactRequest {
                contact_id: unknown.clone(),
            }))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .add_channel_identity(app.req(pb::AddChannelIdentityRequest {
                contact_id: unknown,
                identity: Some(whatsapp("1")),
            }))
            .await,
        Code::NotFound,
    );
}

async fn profile_fields_are_checked_and_named(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let cases: Vec<(pb::Contact, &str)> = vec![
        (
            pb::Contact {
                first_name: "x".repeat(257),
                ..Default::default()
            },
            "contact.first_name",
        ),
        (
            pb::Contact {
                last_name: "y".repeat(300),
                ..Default::default()
            },
            "contact.last_name",
        ),
        (
            pb::Contact {
                email: "ana@".into(),
                ..Default::default()
            },
            "contact.email",
        ),
        (
            pb::Contact {
                phone: "12345".into(),
                ..Default::default()
            },
            "contact.phone",
        ),
        (
            pb::Contact {
                language: "español".into(),
                ..Default::default()
            },
            "contact.language",
        ),
        (
            pb::Contact {
                tags: vec!["ok".into(), " ".into()],
                ..Default::default()
            },
            "contact.tags[1]",
        ),
        (
            pb::Contact {
                tags: (0..101).map(|i| format!("t{i}")).collect(),
                ..Default::default()
            },
            "contact.tags",
        ),
        (
            pb::Contact {
                custom_fields: [(
                    "Bad Key".to_owned(),
                    pb::CustomFieldValue {
                        kind: Some(pb::custom_field_value::Kind::BoolValue(true)),
                    },
                )]
                .into(),
                ..Default::default()
            },
            "contact.custom_fields[\"Bad Key\"]",
        ),
        (
            pb::Contact {
                custom_fields: [("empty".to_owned(), pb::CustomFieldValue { kind: None })].into(),
                ..Default::default()
            },
            "contact.custom_fields[\"empty\"]",
        ),
    ];
    for (contact, field) in cases {
        assert_invalid_field(
            client
                .create_contact(app.req(pb::CreateContactRequest {
                    contact: Some(contact),
                    request_id: String::new(),
                }))
                .await,
            field,
        );
    }
    let listed = client
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.contacts.is_empty(),
        "no refused call created anything"
    );
}

async fn identities_are_checked_and_named(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let resolve = |identity: Option<pb::ChannelIdentity>| {
        app.req(pb::ResolveContactRequest {
            identity,
            profile: None,
        })
    };
    assert_invalid_field(client.resolve_contact(resolve(None)).await, "identity");
    let unknown_channel = pb::ChannelIdentity {
        channel_type: 99,
        ..whatsapp("1")
    };
    assert_invalid_field(
        client.resolve_contact(resolve(Some(unknown_channel))).await,
        "identity.channel_type",
    );
    let unspecified = pb::ChannelIdentity {
        channel_type: 0,
        ..whatsapp("1")
    };
    assert_invalid_field(
        client.resolve_contact(resolve(Some(unspecified))).await,
        "identity.channel_type",
    );
    let no_channel = pb::ChannelIdentity {
        channel_id: String::new(),
        ..whatsapp("1")
    };
    assert_invalid_field(
        client.resolve_contact(resolve(Some(no_channel))).await,
        "identity.channel_id",
    );
    let long_external = whatsapp(&"9".repeat(257));
    assert_invalid_field(
        client.resolve_contact(resolve(Some(long_external))).await,
        "identity.external_id",
    );
    assert_invalid_field(
        client
            .create_contact(app.req(pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    identities: vec![whatsapp("1"), whatsapp("")],
                    ..Default::default()
                }),
                request_id: String::new(),
            }))
            .await,
        "contact.identities[1].external_id",
    );
}

async fn update_masks_are_checked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let contact = app.create("Xavi", None).await;
    let update = |paths: Option<Vec<&str>>| {
        app.req(pb::UpdateContactRequest {
            contact: Some(pb::Contact {
                contact_id: contact.contact_id.clone(),
                ..Default::default()
            }),
            update_mask: paths.map(|paths| prost_types::FieldMask {
                paths: paths.into_iter().map(str::to_owned).collect(),
            }),
        })
    };
    assert_invalid_field(client.update_contact(update(None)).await, "update_mask");
    assert_invalid_field(
        client.update_contact(update(Some(vec![]))).await,
        "update_mask",
    );
    assert_invalid_field(
        client.update_contact(update(Some(vec!["status"]))).await,
        "update_mask",
    );
    assert_invalid_field(
        client
            .update_contact(app.req(pb::UpdateContactRequest {
                contact: Some(pb::Contact::default()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["email".into()],
                }),
            }))
            .await,
        "contact.contact_id",
    );
}

async fn page_sizes_and_tokens_are_checked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    for page_size in [-1, 1001] {
        assert_invalid_field(
            client
                .list_contacts(app.req(pb::ListContactsRequest {
                    page_size,
                    ..Default::default()
                }))
                .await,
            "page_size",
        );
    }
    assert_invalid_field(
        client
            .list_contacts(app.req(pb::ListContactsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            }))
            .await,
        "page_token",
    );
    assert_invalid_field(
        client
            .list_contacts(app.req(pb::ListContactsRequest {
                email: "nope".into(),
                ..Default::default()
            }))
            .await,
        "email",
    );
}
