//! Channel identities: unique per workspace, added and removed.

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, assert_code, backend_tests, error_info_value, in_workspace};
use tonic::Code;

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(
    an_identity_can_be_added_and_removed,
    an_identity_belongs_to_one_contact_per_workspace,
    the_same_identity_may_exist_in_another_workspace,
);

async fn an_identity_can_be_added_and_removed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let contact = app.create("Fede", Some(whatsapp("1"))).await;
    let telegram = pb::ChannelIdentity {
        channel_type: pb::ChannelType::Telegram as i32,
        channel_id: "bot-1".into(),
        external_id: "998877".into(),
    };
    let added = client
        .add_channel_identity(app.req(pb::AddChannelIdentityRequest {
            contact_id: contact.contact_id.clone(),
            identity: Some(telegram.clone()),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(added.identities, [whatsapp("1"), telegram.clone()]);
    let removed = client
        .remove_channel_identity(app.req(pb::RemoveChannelIdentityRequest {
            contact_id: contact.contact_id.clone(),
            identity: Some(whatsapp("1")),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(removed.identities, [telegram]);
    assert_code(
        client
            .remove_channel_identity(app.req(pb::RemoveChannelIdentityRequest {
                contact_id: contact.contact_id,
                identity: Some(whatsapp("1")),
            }))
            .await,
        Code::NotFound,
    );
}

async fn an_identity_belongs_to_one_contact_per_workspace(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let owner = app.create("Gala", Some(whatsapp("42"))).await;
    let status = assert_code(
        client
            .create_contact(app.req(pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: "Impostor".into(),
                    identities: vec![whatsapp("42")],
                    ..Default::default()
                }),
                request_id: String::new(),
            }))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(
        error_info_value(&status, "contact_id"),
        Some(owner.contact_id.clone())
    );
    let other = app.create("Other", None).await;
    let status = assert_code(
        client
            .add_channel_identity(app.req(pb::AddChannelIdentityRequest {
                contact_id: other.contact_id,
                identity: Some(whatsapp("42")),
            }))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(
        error_info_value(&status, "contact_id"),
        Some(owner.contact_id)
    );
    let listed = client
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.contacts.len(),
        2,
        "the refused create left nothing behind"
    );
}

async fn the_same_identity_may_exist_in_another_workspace(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let mine = app.create("Hugo", Some(whatsapp("7"))).await;
    let elsewhere = uuid::Uuid::now_v7();
    let theirs = client
        .create_contact(in_workspace(
            elsewhere,
            pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: "Hugo's namesake".into(),
                    identities: vec![whatsapp("7")],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_ne!(mine.contact_id, theirs.contact_id);
    assert_code(
        client
            .get_contact(in_workspace(
                elsewhere,
                pb::GetContactRequest {
                    contact_id: mine.contact_id,
                },
            ))
            .await,
        Code::NotFound,
    );
}
