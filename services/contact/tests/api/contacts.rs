//! Creating, reading, updating, deleting and listing contacts.

use std::collections::HashMap;

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, assert_code, backend_tests};
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(
    a_created_contact_can_be_read_back_with_everything_it_was_given,
    a_retried_create_with_the_same_request_id_creates_one_contact,
    an_update_changes_only_the_fields_in_the_mask,
    a_deleted_contact_is_gone_and_its_identity_is_free_again,
    lists_page_newest_first_and_filter_by_name_email_phone_and_tag,
);

fn text(value: &str) -> pb::CustomFieldValue {
    pb::CustomFieldValue {
        kind: Some(pb::custom_field_value::Kind::TextValue(value.into())),
    }
}

async fn a_created_contact_can_be_read_back_with_everything_it_was_given(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let contact = pb::Contact {
        first_name: " Ana ".into(),
        last_name: "García".into(),
        email: "Ana@Example.com".into(),
        phone: "+34 600 123 456".into(),
        language: "es".into(),
        custom_fields: HashMap::from([
            ("plan".to_owned(), text("pro")),
            (
                "score".to_owned(),
                pb::CustomFieldValue {
                    kind: Some(pb::custom_field_value::Kind::NumberValue(4.5)),
                },
            ),
        ]),
        tags: vec!["vip".into(), "lead".into(), "vip".into()],
        identities: vec![whatsapp("34600123456")],
        ..Default::default()
    };
    let created = client
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(contact),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(created.first_name, "Ana");
    assert_eq!(created.email, "ana@example.com");
    assert_eq!(created.phone, "+34600123456");
    assert_eq!(created.tags, ["vip", "lead"]);
    assert_eq!(created.status, pb::ContactStatus::Active as i32);
    assert_eq!(created.workspace_id, app.workspace.to_string());
    assert_eq!(
        uuid::Uuid::parse_str(&created.contact_id)
            .unwrap()
            .get_version_num(),
        7
    );

    let read = client
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: created.contact_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(read, created);
    assert_eq!(read.identities, [whatsapp("34600123456")]);
    assert_eq!(read.custom_fields["plan"], text("pro"));
}

async fn a_retried_create_with_the_same_request_id_creates_one_contact(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let create = || pb::CreateContactRequest {
        contact: Some(pb::Contact {
            first_name: "Bea".into(),
            ..Default::default()
        }),
        request_id: request_id.clone(),
    };
    let first = client
        .create_contact(app.req(create()))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .create_contact(app.req(create()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.contact, second.contact);
    let listed = client
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contacts.len(), 1);
}

async fn an_update_changes_only_the_fields_in_the_mask(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let created = app.create("Carla", None).await;
    let updated = client
        .update_contact(app.req(pb::UpdateContactRequest {
            contact: Some(pb::Contact {
                contact_id: created.contact_id.clone(),
                first_name: "ignored, not in the mask".into(),
                email: "carla@example.com".into(),
                tags: vec!["support".into()],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["email".into(), "tags".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.first_name, "Carla");
    assert_eq!(updated.email, "carla@example.com");
    assert_eq!(updated.tags, ["support"]);
    assert_eq!(updated.create_time, created.create_time);
    let read = client
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: created.contact_id,
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(read, updated);
}

async fn a_deleted_contact_is_gone_and_its_identity_is_free_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let created = app.create("Dora", Some(whatsapp("111"))).await;
    client
        .delete_contact(app.req(pb::DeleteContactRequest {
            contact_id: created.contact_id.clone(),
        }))
        .await
        .unwrap();
    assert_code(
        client
            .get_contact(app.req(pb::GetContactRequest {
                contact_id: created.contact_id.clone(),
            }))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .delete_contact(app.req(pb::DeleteContactRequest {
                contact_id: created.contact_id,
            }))
            .await,
        Code::NotFound,
    );
    let again = app.create("Dora again", Some(whatsapp("111"))).await;
    assert_eq!(again.identities, [whatsapp("111")]);
}

async fn lists_page_newest_first_and_filter_by_name_email_phone_and_tag(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let mut created = Vec::new();
    for index in 0..7 {
        created.push(
            app.create(&format!("Person {index}"), None)
                .await
                .contact_id,
        );
    }
    let tagged = client
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Elena".into(),
                last_name: "100%_Ruiz".into(),
                email: "elena@example.com".into(),
                phone: "+593991234567".into(),
                tags: vec!["vip".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    created.push(tagged.contact_id.clone());

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_contacts(app.req(pb::ListContactsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.contacts.len() <= 3);
        seen.extend(page.contacts.into_iter().map(|c| c.contact_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(seen, created, "every contact once, newest first");

    let only = |request: pb::ListContactsRequest| {
        let mut client = client.clone();
        let request = app.req(request);
        async move {
            let listed = client.list_contacts(request).await.unwrap().into_inner();
            listed
                .contacts
                .into_iter()
                .map(|c| c.contact_id)
                .collect::<Vec<_>>()
        }
    };
    let elena = vec![tagged.contact_id.clone()];
    let by_name = pb::ListContactsRequest {
        name: "ELENA 100%_r".into(),
        ..Default::default()
    };
    assert_eq!(only(by_name).await, elena);
    let wildcard = pb::ListContactsRequest {
        name: "%".into(),
        ..Default::default()
    };
    assert_eq!(only(wildcard).await, elena, "% is matched literally");
    let by_email = pb::ListContactsRequest {
        email: "Elena@example.com".into(),
        ..Default::default()
    };
    assert_eq!(only(by_email).await, elena);
    let by_phone = pb::ListContactsRequest {
        phone: "+593 99 123 4567".into(),
        ..Default::default()
    };
    assert_eq!(only(by_phone).await, elena);
    let by_tag = pb::ListContactsRequest {
        tag: "vip".into(),
        ..Default::default()
    };
    assert_eq!(only(by_tag).await, elena);
    let accented = app
        .client()
        .await
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Ángela".into(),
                last_name: "Núñez".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let folded = pb::ListContactsRequest {
        name: "ÁNGELA NÚ".into(),
        ..Default::default()
    };
    assert_eq!(
        only(folded).await,
        [accented.contact_id],
        "case folds beyond ASCII, on both engines"
    );
    let nobody = pb::ListContactsRequest {
        tag: "nobody".into(),
        ..Default::default()
    };
    assert!(only(nobody).await.is_empty());
}
