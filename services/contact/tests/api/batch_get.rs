//! BatchGetContacts: many contacts in one call, the found ones only, in the order asked.

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::auth::Role;
use charla_testing::{Backend, as_role, assert_invalid_field, backend_tests};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, whatsapp};

backend_tests!(
    a_batch_answers_the_contacts_found_once_each_in_the_order_asked,
    a_batch_leaves_out_contacts_of_other_workspaces,
    a_batch_with_a_bad_id_or_too_many_ids_is_refused_naming_the_field,
);

async fn batch_get(app: &TestApp, ids: &[&str]) -> Result<Vec<pb::Contact>, tonic::Status> {
    app.client()
        .await
        .batch_get_contacts(as_role(
            Role::Agent,
            app.workspace,
            pb::BatchGetContactsRequest {
                contact_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            },
        ))
        .await
        .map(|response| response.into_inner().contacts)
}

async fn a_batch_answers_the_contacts_found_once_each_in_the_order_asked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ana = app.create("Ana", Some(whatsapp("ana"))).await;
    let bea = app.create("Bea", None).await;
    let cai = app.create("Cai", Some(whatsapp("cai"))).await;
    let merged = app
        .client()
        .await
        .merge_contacts(app.req(pb::MergeContactsRequest {
            primary_contact_id: bea.contact_id.clone(),
            secondary_contact_id: cai.contact_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("merge Cai into Bea")
        .into_inner();
    let nobody = Uuid::now_v7().to_string();

    let found = batch_get(
        &app,
        &[
            &cai.contact_id,
            &nobody,
            &ana.contact_id,
            &cai.contact_id,
            &bea.contact_id,
        ],
    )
    .await
    .expect("the batch is answered");
    // Each found contact as GetContact returns it: identities, and a merged one with the
    // contact that absorbed it.
    let get = |id: &str| {
        let (app, id) = (&app, id.to_owned());
        async move {
            app.client()
                .await
                .get_contact(app.req(pb::GetContactRequest { contact_id: id }))
                .await
                .expect("get the contact")
                .into_inner()
                .contact
                .expect("a contact")
        }
    };
    assert_eq!(
        found,
        [
            get(&cai.contact_id).await,
            get(&ana.contact_id).await,
            get(&bea.contact_id).await,
        ]
    );
    assert_eq!(found[0].status, pb::ContactStatus::Merged as i32);
    assert_eq!(found[0].merged_into_contact_id, bea.contact_id);
    assert_eq!(found[1].identities, [whatsapp("ana")]);
    assert_eq!(
        found[2].identities,
        merged.primary.expect("the primary").identities
    );

    assert_eq!(batch_get(&app, &[]).await.expect("an empty batch"), []);
    assert_eq!(
        batch_get(&app, &[&nobody])
            .await
            .expect("a batch of unknowns"),
        []
    );
}

async fn a_batch_leaves_out_contacts_of_other_workspaces(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ours = app.create("Ours", None).await;
    let theirs = app
        .client()
        .await
        .create_contact(as_role(
            Role::Admin,
            Uuid::now_v7(),
            pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: "Theirs".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create a contact in another workspace")
        .into_inner()
        .contact
        .expect("a contact");
    let found = batch_get(&app, &[&theirs.contact_id, &ours.contact_id])
        .await
        .expect("the batch is answered");
    let ids: Vec<&str> = found.iter().map(|c| c.contact_id.as_str()).collect();
    assert_eq!(ids, [ours.contact_id.as_str()]);
}

async fn a_batch_with_a_bad_id_or_too_many_ids_is_refused_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ana = app.create("Ana", None).await;
    assert_invalid_field(
        batch_get(&app, &[&ana.contact_id, "not-a-uuid", ""]).await,
        "contact_ids[1]",
    );
    assert_invalid_field(
        batch_get(&app, &[&ana.contact_id, ""]).await,
        "contact_ids[1]",
    );

    let ids: Vec<String> = (0..1001).map(|_| Uuid::now_v7().to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_invalid_field(batch_get(&app, &refs).await, "contact_ids");
    // The limit itself is fine, and a contact among unknowns is found.
    let mut at_limit = refs[..999].to_vec();
    at_limit.push(&ana.contact_id);
    let found = batch_get(&app, &at_limit)
        .await
        .expect("1,000 ids are answered");
    let ids: Vec<&str> = found.iter().map(|c| c.contact_id.as_str()).collect();
    assert_eq!(ids, [ana.contact_id.as_str()]);
}
