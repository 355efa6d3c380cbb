//! Blocking and merging contacts.

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests, error_info_value};
use tonic::Code;

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(
    a_merge_moves_identities_and_tags_and_fills_empty_fields,
    a_repeated_merge_returns_the_same_result,
    a_contact_cannot_be_merged_into_itself_or_a_merged_one,
    blocking_and_unblocking_change_the_status_once,
    a_merge_retried_with_its_request_id_answers_the_first_result,
);

async fn a_merge_moves_identities_and_tags_and_fills_empty_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let primary = app.create("Kike", Some(whatsapp("p"))).await;
    let secondary = client
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Enrique".into(),
                email: "kike@example.com".into(),
                tags: vec!["vip".into()],
                identities: vec![whatsapp("s")],
                ..Default::default()
            }),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let merged = client
        .merge_contacts(app.req(pb::MergeContactsRequest {
            primary_contact_id: primary.contact_id.clone(),
            secondary_contact_id: secondary.contact_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let (new_primary, new_secondary) = (merged.primary.unwrap(), merged.secondary.unwrap());
    assert_eq!(
        new_primary.first_name, "Kike",
        "the primary's own values win"
    );
    assert_eq!(
        new_primary.email, "kike@example.com",
        "empty fields are filled"
    );
    assert_eq!(new_primary.tags, ["vip"]);
    assert_eq!(new_primary.identities, [whatsapp("p"), whatsapp("s")]);
    assert_eq!(new_secondary.status, pb::ContactStatus::Merged as i32);
    assert_eq!(new_secondary.merged_into_contact_id, primary.contact_id);
    assert!(new_secondary.identities.is_empty());

    let resolved = client
        .resolve_contact(app.req(pb::ResolveContactRequest {
            identity: Some(whatsapp("s")),
            profile: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.contact.unwrap().contact_id, primary.contact_id);
    let status = assert_code(
        client
            .update_contact(app.req(pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    contact_id: secondary.contact_id,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["first_name".into()],
                }),
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "merged_into_contact_id"),
        Some(primary.contact_id)
    );
}

async fn a_repeated_merge_returns_the_same_result(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let primary = app.create("Luz", None).await;
    let secondary = app.create("Lucía", None).await;
    let merge = || {
        app.req(pb::MergeContactsRequest {
            primary_contact_id: primary.contact_id.clone(),
            secondary_contact_id: secondary.contact_id.clone(),
            ..Default::default()
        })
    };
    let first = client.merge_contacts(merge()).await.unwrap().into_inner();
    let second = client.merge_contacts(merge()).await.unwrap().into_inner();
    assert!(
        first.merge_position.is_some(),
        "a merge says where its event is"
    );
    assert_eq!(first, second);
}

async fn a_contact_cannot_be_merged_into_itself_or_a_merged_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let a = app.create("A", None).await;
    let b = app.create("B", None).await;
    let c = app.create("C", None).await;
    assert_invalid_field(
        client
            .merge_contacts(app.req(pb::MergeContactsRequest {
                primary_contact_id: a.contact_id.clone(),
                secondary_contact_id: a.contact_id.clone(),
                ..Default::default()
            }))
            .await,
        "secondary_contact_id",
    );
    client
        .merge_contacts(app.req(pb::MergeContactsRequest {
            primary_contact_id: a.contact_id.clone(),
            secondary_contact_id: b.contact_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    for (primary, secondary) in [(&b, &c), (&c, &b)] {
        let status = assert_code(
            client
                .merge_contacts(app.req(pb::MergeContactsRequest {
                    primary_contact_id: primary.contact_id.clone(),
                    secondary_contact_id: secondary.contact_id.clone(),
                    ..Default::default()
                }))
                .await,
            Code::FailedPrecondition,
        );
        assert_eq!(
            error_info_value(&status, "contact_id"),
            Some(b.contact_id.clone())
        );
        assert_eq!(
            error_info_value(&status, "merged_into_contact_id"),
            Some(a.contact_id.clone())
        );
    }
    assert_code(
        client
            .merge_contacts(app.req(pb::MergeContactsRequest {
                primary_contact_id: a.contact_id.clone(),
                secondary_contact_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }))
            .await,
        Code::NotFound,
    );
}

async fn blocking_and_unblocking_change_the_status_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let contact = app.create("Mar", None).await;
    let block = || {
        app.req(pb::BlockContactRequest {
            contact_id: contact.contact_id.clone(),
        })
    };
    let blocked = client
        .block_contact(block())
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(blocked.status, pb::ContactStatus::Blocked as i32);
    let again = client
        .block_contact(block())
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(again, blocked, "a repeated block changes nothing");
    let unblocked = client
        .unblock_contact(app.req(pb::UnblockContactRequest {
            contact_id: contact.contact_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(unblocked.status, pb::ContactStatus::Active as i32);
}

async fn a_merge_retried_with_its_request_id_answers_the_first_result(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let a = app.create("A", None).await;
    let b = app.create("B", None).await;
    let c = app.create("C", None).await;
    let key = uuid::Uuid::now_v7().to_string();
    let merge = |primary: &pb::Contact, secondary: &pb::Contact, key: &str| {
        app.req(pb::MergeContactsRequest {
            primary_contact_id: primary.contact_id.clone(),
            secondary_contact_id: secondary.contact_id.clone(),
            request_id: key.into(),
        })
    };
    let first = client
        .merge_contacts(merge(&b, &c, &key))
        .await
        .unwrap()
        .into_inner();
    let position = first.merge_position.expect("the merge's event position");
    // The ContactsMerged event is where the answer says.
    let mut stream = client
        // Without a token of its own, the call carries the test client's service token: the
        // stream of every workspace, numbered by partition sequence like the position.
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![pb::PartitionCursor {
                partition: position.partition,
                sequence: position.sequence - 1,
            }],
            partitions: vec![position.partition],
        })
        .await
        .unwrap()
        .into_inner();
    let event = stream.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(event.sequence, position.sequence);
    assert!(matches!(
        event.payload,
        Some(pb::contact_event::Payload::Merged(_))
    ));

    // The primary is merged away afterwards; the retry of the first call, its answer lost, still
    // gets that call's result.
    client.merge_contacts(merge(&a, &b, "")).await.unwrap();
    let retried = client
        .merge_contacts(merge(&b, &c, &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.merge_position, Some(position));
    assert_eq!(
        retried.secondary.unwrap().merged_into_contact_id,
        b.contact_id
    );
    assert_eq!(
        retried.primary.unwrap().merged_into_contact_id,
        a.contact_id,
        "the contacts as they are now"
    );
    // The same key for another pair is refused, naming it.
    let d = app.create("D", None).await;
    assert_invalid_field(
        client.merge_contacts(merge(&a, &d, &key)).await,
        "request_id",
    );
    assert_invalid_field(
        client.merge_contacts(merge(&a, &d, "not-a-uuid")).await,
        "request_id",
    );
}
