//! A real browser calling the service: headless Chromium opens a page served from another origin
//! (tests/clients/browser/contact.html), whose script calls the contact service with gRPC-Web,
//! through the browser's own CORS checks. Skipped with a notice when Chromium is missing, except
//! under CI=true, where it must run.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use charla_runtime::auth::Role;
use charla_runtime::config::RuntimeConfig;
use charla_testing::Backend;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_configured;

const PAGE: &str = include_str!("../../../../tests/clients/browser/contact.html");

/// Bounds that keep a stuck browser from hanging the run; none of them measures anything.
const PAGE_BUDGET_MS: u64 = 20_000;
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium to run (`CHARLA_CHROMIUM`, else `chromium` on the path), if there is one.
fn chromium() -> Option<String> {
    let binary = std::env::var("CHARLA_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Some(binary);
    }
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !ci,
        "the browser test must run under CI=true: no `{binary}`"
    );
    eprintln!(
        "SKIPPED: the browser test, no `{binary}` (apt install chromium, or set CHARLA_CHROMIUM)"
    );
    None
}

/// Serves the page to every GET of /contact.html (and nothing else) from `listener`.
async fn serve_page(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => head.extend_from_slice(&buffer[..read]),
                }
            }
            let found = head.starts_with(b"GET /contact.html");
            let (status, body) = if found {
                ("200 OK", PAGE)
            } else {
                ("404 Not Found", "")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                 content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Opens `url` in headless Chromium and answers the DOM once the page settled.
async fn dump_dom(binary: &str, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("charla-chromium-{}", uuid::Uuid::now_v7()));
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The page's calls run while virtual time waits for the network: the DOM is dumped
            // once they are done (or the budget is spent).
            &format!("--virtual-time-budget={PAGE_BUDGET_MS}"),
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Read the pipes on their own threads so a chatty browser never blocks on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium still runs after {BROWSER_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = std::fs::remove_dir_all(&profile);
    let (dom, log) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed ({status}):\n{log}");
    dom
}

/// The JSON the page wrote into `<pre id="result">`.
fn page_result(dom: &str) -> Value {
    let start = dom
        .find("<pre id=\"result\">")
        .unwrap_or_else(|| panic!("no result in the page:\n{dom}"))
        + "<pre id=\"result\">".len();
    let end = start + dom[start..].find("</pre>").expect("the result ends");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("the page did not finish: {text}"))
}

#[tokio::test]
async fn a_page_on_another_origin_calls_the_service_from_headless_chromium() {
    let Some(binary) = chromium() else {
        return;
    };
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_addr: SocketAddr = pages.local_addr().unwrap();
    tokio::spawn(serve_page(pages));

    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    // Exactly the page's origin: a different port on the same host is another origin.
    config.cors.cors_allowed_origins =
        charla_runtime::cors::AllowedOrigins::parse(&format!("http://{page_addr}")).unwrap();
    let app = spawn_configured(config, uuid::Uuid::now_v7()).await;
    let token = charla_testing::token(Role::Agent, Some(app.workspace));
    let page = format!(
        "http://{page_addr}/contact.html?api=http://{}&token={token}",
        app.addr
    );

    let result = page_result(&dump_dom(&binary, &page).await);

    assert_eq!(result["create"]["status"], 0, "{result}");
    assert_eq!(result["create"]["firstName"], "Browser", "{result}");
    let created = result["create"]["contactId"].as_str().unwrap();
    assert!(!created.is_empty(), "{result}");
    assert_eq!(result["list"]["status"], 0, "{result}");
    assert_eq!(result["list"]["contactIds"], serde_json::json!([created]));
    let invalid = &result["invalid"];
    assert_eq!(
        invalid["status"],
        tonic::Code::InvalidArgument as i32,
        "{result}"
    );
    assert_eq!(
        invalid["details"]["code"],
        tonic::Code::InvalidArgument as i32
    );
    let violations = invalid["details"]["violations"].as_array().unwrap();
    assert!(
        violations
            .iter()
            .any(|violation| violation["field"] == "contact_id"),
        "a BadRequest naming the field: {result}"
    );
}
