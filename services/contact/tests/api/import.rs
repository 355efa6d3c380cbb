//! ImportContacts: a result per row; a bad row does not stop the others; rows are idempotent by
//! external id; any number of small rows keeps the connection; a shutdown or a near deadline
//! answers with exactly the rows written.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::config::RuntimeConfig;
use charla_testing::{Backend, backend_tests};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::{TestApp, spawn_app, spawn_app_on, spawn_configured, whatsapp};

backend_tests!(
    an_import_reports_each_row_and_keeps_the_good_ones,
    importing_the_same_rows_again_changes_nothing,
    concurrent_imports_of_the_same_rows_create_each_contact_once,
    thousands_of_small_rows_one_per_frame_keep_the_connection,
    on_shutdown_an_import_answers_with_exactly_the_rows_it_wrote,
);

fn row(first_name: &str, external_id: &str) -> pb::ImportContactsRequest {
    pb::ImportContactsRequest {
        contact: Some(pb::Contact {
            first_name: first_name.into(),
            ..Default::default()
        }),
        external_id: external_id.into(),
    }
}

async fn import(app: &TestApp, rows: Vec<pb::ImportContactsRequest>) -> pb::ImportContactsResponse {
    app.client()
        .await
        .import_contacts(app.req(tokio_stream::iter(rows)))
        .await
        .expect("the import call succeeds as a whole")
        .into_inner()
}

fn outcomes(response: &pb::ImportContactsResponse) -> Vec<pb::ImportOutcome> {
    response.results.iter().map(|r| r.outcome()).collect()
}

/// Every contact of the test's workspace, by id.
async fn contacts(app: &TestApp) -> HashMap<String, pb::Contact> {
    let mut client = app.client().await;
    let mut all = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_contacts(app.req(pb::ListContactsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            }))
            .await
            .expect("list contacts")
            .into_inner();
        all.extend(page.contacts.into_iter().map(|c| (c.contact_id.clone(), c)));
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Each result is the row at its position, in order: the answer covers a prefix of the stream.
fn assert_results_follow_rows(
    response: &pb::ImportContactsResponse,
    rows: &[pb::ImportContactsRequest],
) {
    for (index, result) in response.results.iter().enumerate() {
        assert_eq!(result.row as usize, index);
        assert_eq!(result.external_id, rows[index].external_id);
    }
}

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
    let response = import(
        &app,
        rows.into_iter()
            .map(|contact| pb::ImportContactsRequest {
                contact: Some(contact),
                external_id: String::new(),
            })
            .collect(),
    )
    .await;
    assert_eq!(response.created_count, 2);
    assert_eq!(response.failed_count, 2);
    assert_eq!(response.unchanged_count, 0);
    assert!(!response.stopped_early);
    let rows: Vec<i32> = response.results.iter().map(|r| r.row).collect();
    assert_eq!(rows, [0, 1, 2, 3]);
    use pb::ImportOutcome::{Imported, Refused};
    assert_eq!(outcomes(&response), [Imported, Refused, Refused, Imported]);
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

async fn importing_the_same_rows_again_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut with_identity = row("Ana", "crm-1");
    with_identity
        .contact
        .as_mut()
        .unwrap()
        .identities
        .push(whatsapp("ana"));
    let first_rows = vec![with_identity.clone(), row("Bea", "crm-2"), row("Caio", "")];
    let first = import(&app, first_rows).await;
    use pb::ImportOutcome::{Imported, Refused, Unchanged};
    assert_eq!(outcomes(&first), [Imported, Imported, Imported]);
    let id = |response: &pb::ImportContactsResponse, row: usize| {
        response.results[row].contact_id.clone()
    };

    // Again, with a changed name for crm-1 and crm-2 twice in one call: the known ids answer their
    // contacts untouched; the row without an external id creates another contact.
    let mut renamed = with_identity.clone();
    renamed.contact.as_mut().unwrap().first_name = "Changed".into();
    let second = import(
        &app,
        vec![
            renamed,
            row("Bea", "crm-2"),
            row("Caio", ""),
            row("Bea again", "crm-2"),
        ],
    )
    .await;
    assert_eq!(
        outcomes(&second),
        [Unchanged, Unchanged, Imported, Unchanged]
    );
    assert_eq!(
        (
            second.created_count,
            second.unchanged_count,
            second.failed_count
        ),
        (1, 3, 0)
    );
    assert_eq!(id(&second, 0), id(&first, 0));
    assert_eq!(id(&second, 1), id(&first, 1));
    assert_eq!(id(&second, 3), id(&first, 1));
    assert_ne!(id(&second, 2), id(&first, 2));
    assert!(second.results.iter().all(|r| r.error.is_none()));

    let stored = contacts(&app).await;
    assert_eq!(stored.len(), 4, "crm-1, crm-2 and Caio twice");
    let ana = &stored[&id(&first, 0)];
    assert_eq!(ana.first_name, "Ana");
    assert_eq!(ana.identities.len(), 1);

    // A bad external id is refused naming the field, and writes nothing.
    let bad = import(&app, vec![row("Spaces", " crm-3"), row("Nul", "crm\0-4")]).await;
    assert_eq!(outcomes(&bad), [Refused, Refused]);
    for result in &bad.results {
        let error = result.error.as_ref().expect("an error");
        assert_eq!(error.code, Code::InvalidArgument as i32);
        assert!(error.message.contains("external_id"), "{}", error.message);
    }
    assert_eq!(contacts(&app).await.len(), 4);

    // External ids are the workspace's own: another workspace imports crm-1 as a new contact.
    let elsewhere = spawn_app_on(&app.database_url, uuid::Uuid::now_v7()).await;
    let other = import(&elsewhere, vec![row("Ana", "crm-1")]).await;
    assert_eq!(outcomes(&other), [Imported]);
    assert_ne!(id(&other, 0), id(&first, 0));

    // Deleting a contact frees its external id: importing it again creates a new contact.
    app.client()
        .await
        .delete_contact(app.req(pb::DeleteContactRequest {
            contact_id: id(&first, 1),
        }))
        .await
        .expect("delete crm-2");
    let after_delete = import(&app, vec![row("Bea", "crm-2")]).await;
    assert_eq!(outcomes(&after_delete), [Imported]);
    assert_ne!(id(&after_delete, 0), id(&first, 1));
}

async fn concurrent_imports_of_the_same_rows_create_each_contact_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    const ROWS: usize = 25;
    const CALLS: usize = 4;
    let rows: Vec<_> = (0..ROWS)
        .map(|i| {
            let mut row = row(&format!("Row {i}"), &format!("ext-{i}"));
            let identity = whatsapp(&format!("593-{i}"));
            row.contact.as_mut().unwrap().identities.push(identity);
            row
        })
        .collect();
    let mut calls = Vec::new();
    for call in 0..CALLS {
        // Each call starts at a different row, so the calls meet on every row.
        let mut mine = rows.clone();
        mine.rotate_left(call * ROWS / CALLS);
        let mut client = app.client().await;
        let request = app.req(tokio_stream::iter(mine));
        calls.push(tokio::spawn(async move {
            client.import_contacts(request).await
        }));
    }
    let mut contact_of: HashMap<String, HashSet<String>> = HashMap::new();
    let (mut created, mut unchanged) = (0, 0);
    for call in calls {
        let response = call
            .await
            .unwrap()
            .expect("the import succeeds")
            .into_inner();
        assert_eq!(response.failed_count, 0, "{:?}", response.results);
        created += response.created_count;
        unchanged += response.unchanged_count;
        for result in response.results {
            contact_of
                .entry(result.external_id)
                .or_default()
                .insert(result.contact_id);
        }
    }
    assert_eq!(
        (created, unchanged),
        (ROWS as i32, (ROWS * (CALLS - 1)) as i32)
    );
    assert_eq!(contact_of.len(), ROWS);
    assert!(
        contact_of.values().all(|ids| ids.len() == 1),
        "every call answers the same contact for an external id: {contact_of:?}"
    );
    assert_eq!(contacts(&app).await.len(), ROWS);
}

/// grpcio sends each row of a client stream in a DATA frame of its own. h2 closes a connection
/// holding too many small frames unread (GOAWAY "too_many_data_frames"), which an import whose
/// rows arrive faster than they are written used to reach at about 2,300 rows.
async fn thousands_of_small_rows_one_per_frame_keep_the_connection(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rows: Vec<_> = (0..5000)
        .map(|i| row(&format!("r{i}"), &format!("{i}")))
        .collect();
    // tonic packs the rows that are ready into one frame; a pause between rows sends each alone.
    let one_per_frame = tokio_stream::iter(rows.clone()).then(|row| async {
        tokio::task::yield_now().await;
        row
    });
    let mut request = app.req(one_per_frame);
    // A short deadline keeps the test short: the import answers before it with what it wrote.
    request.set_timeout(Duration::from_secs(3));
    let mut client = app.client().await;
    let response = client
        .import_contacts(request)
        .await
        .expect("the connection survives the small frames")
        .into_inner();
    let handled = response.results.len();
    assert!(handled > 0);
    assert_eq!(response.stopped_early, handled < rows.len());
    assert_eq!(response.created_count as usize, handled);
    assert_results_follow_rows(&response, &rows);
    assert_eq!(contacts(&app).await.len(), handled);
    // The same connection still serves calls.
    client
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: response.results[0].contact_id.clone(),
        }))
        .await
        .expect("the connection still serves");
}

/// SIGTERM while a client streams rows slowly: the import answers at once, not at the request
/// timeout, with one result per row it wrote; the database holds exactly those rows; the client
/// sends the rest to the next server and every row lands once.
async fn on_shutdown_an_import_answers_with_exactly_the_rows_it_wrote(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rows: Vec<_> = (0..40)
        .map(|i| row(&format!("Slow {i}"), &format!("slow-{i}")))
        .collect();
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let feeder = {
        let rows = rows.clone();
        tokio::spawn(async move {
            for row in rows {
                if sender.send(row).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The client never ends its stream on its own.
            std::future::pending::<()>().await;
        })
    };
    let call = {
        let mut client = app.client().await;
        let request = app.req(ReceiverStream::new(receiver));
        tokio::spawn(async move { client.import_contacts(request).await })
    };
    let waited = Instant::now();
    while contacts(&app).await.len() < 5 {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "rows are written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    app.signal_shutdown();
    let response = call
        .await
        .unwrap()
        .expect("the import answers")
        .into_inner();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "answered {:?} after the signal",
        signalled.elapsed()
    );
    feeder.abort();
    assert!(response.stopped_early);
    let handled = response.results.len();
    assert!((5..rows.len()).contains(&handled), "{handled} rows handled");
    assert_eq!(response.created_count as usize, handled);
    assert_results_follow_rows(&response, &rows);
    let database_url = app.database_url.clone();
    let workspace = app.workspace;
    app.stop().await;

    let next = spawn_app_on(&database_url, workspace).await;
    let stored: HashSet<String> = contacts(&next).await.into_keys().collect();
    let answered: HashSet<String> = response
        .results
        .iter()
        .map(|r| r.contact_id.clone())
        .collect();
    assert_eq!(stored, answered, "the answer and the database agree");

    let rest = import(&next, rows[handled..].to_vec()).await;
    assert!(!rest.stopped_early);
    assert_eq!(rest.created_count as usize, rows.len() - handled);
    assert_eq!(contacts(&next).await.len(), rows.len());
}

/// An import still streaming when its deadline nears answers with what it wrote instead of
/// being cancelled with nothing to show.
#[tokio::test]
async fn an_import_near_the_request_timeout_answers_with_what_it_wrote() {
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    config.request_timeout_secs = 1;
    let app = spawn_configured(config, uuid::Uuid::now_v7()).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    sender.send(row("Early", "early-1")).await.unwrap();
    sender.send(row("Early", "early-2")).await.unwrap();
    let started = Instant::now();
    let response = app
        .client()
        .await
        .import_contacts(app.req(ReceiverStream::new(receiver)))
        .await
        .expect("the import answers before the timeout")
        .into_inner();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(response.stopped_early);
    assert_eq!(response.created_count, 2);
    assert_eq!(contacts(&app).await.len(), 2);
    drop(sender);
}
