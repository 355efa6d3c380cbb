//! `charla bench --smoke`: the bench runs end to end on SQLite and on PostgreSQL, and its JSON
//! has every section with positive figures and floors. A smoke test only: it never judges a speed.

use std::process::Command;

use sqlx::Connection as _;

/// Every section the bench promises, by its JSON key.
const SECTIONS: [&str; 6] = [
    "ingest",
    "event_lag",
    "import",
    "consumer",
    "reports",
    "memory",
];

/// Runs the smoke bench (`extra` arguments added) and returns its JSON.
fn smoke(extra: &[&str]) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!("charla-bench-{}.json", uuid::Uuid::now_v7()));
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["bench", "--smoke", "--rounds", "1", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run charla bench");
    assert!(
        output.status.success(),
        "charla bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("floor (same run)"), "{table}");
    let text = std::fs::read_to_string(&json).expect("the bench wrote its JSON");
    let _ = std::fs::remove_file(&json);
    serde_json::from_str(&text).expect("the JSON parses")
}

/// Fails unless every section is there, each with figures whose values (and floors) are
/// positive numbers.
fn check(report: &serde_json::Value, backend: &str) {
    assert_eq!(report["backend"], backend);
    for key in SECTIONS {
        let figures = report["sections"][key]["figures"]
            .as_array()
            .unwrap_or_else(|| panic!("section {key} is missing: {report:#}"));
        assert!(!figures.is_empty(), "section {key} has no figures");
        for figure in figures {
            let value = figure["value"].as_f64().unwrap_or(f64::NAN);
            assert!(value > 0.0 && value.is_finite(), "{key}: {figure}");
            if !figure["floor"].is_null() {
                let floor = figure["floor"]["value"].as_f64().unwrap_or(f64::NAN);
                assert!(floor > 0.0 && floor.is_finite(), "{key}: {figure}");
            }
        }
    }
    let sections = report["sections"].as_object().expect("sections");
    assert_eq!(sections.len(), SECTIONS.len(), "{:?}", sections.keys());
}

#[test]
fn the_smoke_bench_reports_every_section_on_sqlite() {
    check(&smoke(&[]), "sqlite");
}

#[tokio::test]
async fn the_smoke_bench_reports_every_section_on_postgres() {
    let url = charla_testing::postgres_admin_url();
    if let Err(error) = sqlx::PgConnection::connect(&url).await {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL tests must run under CI=true, but {url} is unreachable: {error}"
        );
        eprintln!("SKIPPED: the PostgreSQL smoke bench, {url} is unreachable ({error})");
        return;
    }
    let report = tokio::task::spawn_blocking(move || smoke(&["--postgres-url", &url]))
        .await
        .expect("the bench ran");
    check(&report, "postgres");
}
