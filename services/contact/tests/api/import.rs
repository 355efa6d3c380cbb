//! ImportContacts: a result per row; a bad row does not stop the others.

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, backend_tests};
use tonic::Code;

use crate::helpers::{spawn_app, whatsapp};

backend_tests!(an_import_reports_each_row_and_keeps_the_good_ones);

async fn an_import_reports_each_row_and_keeps_the_good_ones(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let existing = app.create("Nico", Some(whatsapp("taken"))).await;
    let rows = vec![
        pb::Contact {
            first_name: "Olga".into(),
            identities: vec![whatsapp("o")],
            ..Default::default()
        },
        pb::Contact {
            first_name: "Bad email".into(),
            email: "not-an-email".into(),
            ..Default::default()
        },
        pb::Contact {
            first_name: "Duplicate".into(),
            identities: vec![whatsapp("taken")],
            ..Default::default()
        },
        pb::Contact {
            first_name: "Pablo".into(),
            tags: vec!["imported".into()],
            ..Default::default()
        },
    ];
    let stream = tokio_stream::iter(
        rows.into_iter()
            .map(|contact| pb::ImportContactsRequest {
                contact: Some(contact),
            })
            .collect::<Vec<_>>(),
    );
    let response = app
        .client()
        .await
        .import_contacts(app.req(stream))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.created_count, 2);
    assert_eq!(response.failed_count, 2);
    let rows: Vec<i32> = response.results.iter().map(|r| r.row).collect();
    assert_eq!(rows, [0, 1, 2, 3]);
    let error = |row: usize| response.results[row].error.clone().expect("an error");
    assert!(response.results[0].error.is_none());
    assert_eq!(error(1).code, Code::InvalidArgument as i32);
    assert!(
        error(1).message.contains("contact.email"),
        "{}",
        error(1).message
    );
    assert_eq!(error(2).code, Code::AlreadyExists as i32);
    assert!(error(2).message.contains(&existing.contact_id));

    let listed = app
        .client()
        .await
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .contacts
        .iter()
        .map(|c| c.first_name.as_str())
        .collect();
    assert_eq!(names, ["Pablo", "Olga", "Nico"]);
}
