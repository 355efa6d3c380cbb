//! ResolveContact: find by identity or create, also under concurrency.

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, backend_tests};

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(
    resolving_a_known_identity_returns_its_contact,
    resolving_a_new_identity_creates_a_contact_with_the_profile,
    concurrent_resolves_of_one_new_identity_agree_on_one_contact,
);

async fn resolving_a_known_identity_returns_its_contact(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let known = app.create("Inés", Some(whatsapp("5"))).await;
    let resolved = app
        .client()
        .await
        .resolve_contact(app.req(pb::ResolveContactRequest {
            identity: Some(whatsapp("5")),
            profile: Some(pb::Contact {
                first_name: "not used".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!resolved.created);
    assert_eq!(resolved.contact.unwrap(), known);
}

async fn resolving_a_new_identity_creates_a_contact_with_the_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let resolved = app
        .client()
        .await
        .resolve_contact(app.req(pb::ResolveContactRequest {
            identity: Some(whatsapp("6")),
            profile: Some(pb::Contact {
                first_name: "Juan".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resolved.created);
    let contact = resolved.contact.unwrap();
    assert_eq!(contact.first_name, "Juan");
    assert_eq!(contact.identities, [whatsapp("6")]);
}

async fn concurrent_resolves_of_one_new_identity_agree_on_one_contact(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.client().await;
    let calls = (0..30).map(|_| {
        let mut client = client.clone();
        let request = app.req(pb::ResolveContactRequest {
            identity: Some(whatsapp("race")),
            profile: None,
        });
        tokio::spawn(async move { client.resolve_contact(request).await.unwrap().into_inner() })
    });
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for call in calls.collect::<Vec<_>>() {
        let resolved = call.await.unwrap();
        ids.insert(resolved.contact.unwrap().contact_id);
        created += usize::from(resolved.created);
    }
    assert_eq!(ids.len(), 1, "every call got the same contact");
    assert_eq!(created, 1, "exactly one call created it");
    let listed = app
        .client()
        .await
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contacts.len(), 1);
}
