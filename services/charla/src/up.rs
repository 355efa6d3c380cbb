//! `charla up`: every service in one process, each on its own port and SQLite file.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use charla_runtime::app::Application;
use charla_runtime::auth::Role;
use charla_runtime::auth::config::AuthConfig;
use charla_runtime::auth::keys::KeySet;
use charla_runtime::config::{LogFormat, RuntimeConfig};
use charla_runtime::test_clock::ServiceClock;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::credentials::KeySource;

/// The workspace of the token `charla up` prints (the README's tour uses it).
const TOUR_WORKSPACE: &str = "0190f5a2-5a6e-7000-8000-000000000001";

/// Where and how `charla up` runs the services.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The key set (and the data folder: the services' SQLite files and, unless CHARLA_AUTH_JWKS
    /// names a key set, a development key set, created if missing).
    #[command(flatten)]
    keys: KeySource,

    /// Address the services listen on; 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "CHARLA_HOST", default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port of the contact service.
    #[arg(long, env = "CHARLA_CONTACT_PORT", default_value_t = 50051)]
    contact_port: u16,

    /// Port of the conversation service.
    #[arg(long, env = "CHARLA_CONVERSATION_PORT", default_value_t = 50052)]
    conversation_port: u16,

    /// Port of the metrics service.
    #[arg(long, env = "CHARLA_METRICS_PORT", default_value_t = 50053)]
    metrics_port: u16,

    /// Each service's admin listener (`GET /metrics` for Prometheus) is on its gRPC port plus this
    /// (51051, 51052, 51053 by default); 0 picks free ports. The addresses are printed.
    #[arg(long, env = "CHARLA_ADMIN_PORT_OFFSET", default_value_t = 1000)]
    admin_port_offset: u16,

    /// Run every service on one test clock that `TestClockService` sets or advances (to watch
    /// auto-close and "today" without waiting).
    #[arg(long, env = "CHARLA_TEST_CLOCK")]
    test_clock: bool,

    /// Log format.
    #[arg(long, env = "CHARLA_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Allow `RebuildAggregates` on the metrics service (it recomputes every workspace).
    #[arg(long, env = "CHARLA_ALLOW_REBUILD")]
    allow_rebuild: bool,
}

impl UpArgs {
    fn service_config(&self, port: u16, name: &str) -> RuntimeConfig {
        let file = self.keys.data_dir.join(format!("{name}.db"));
        let auth = AuthConfig {
            auth_jwks: Some(self.keys.jwks_path()),
            auth_issuer: self.keys.issuer.clone(),
            auth_audience: self.keys.audience.clone(),
            ..AuthConfig::default()
        };
        let mut config = RuntimeConfig::new(
            SocketAddr::new(self.host, port),
            format!("sqlite:{}", file.display()),
            auth,
        );
        config.log_format = self.log_format;
        config.admin_addr = Some(SocketAddr::new(
            self.host,
            admin_port(port, self.admin_port_offset),
        ));
        // A development mode: pages on any origin (a local dev server's port) may call.
        config.cors = charla_runtime::cors::CorsConfig::any_origin();
        config
    }
}

/// The admin port of the service on `grpc_port`: `offset` above it, or any free port when either
/// is 0 (or the sum is past the last port).
fn admin_port(grpc_port: u16, offset: u16) -> u16 {
    match (grpc_port, offset) {
        (0, _) | (_, 0) => 0,
        (port, offset) => port.checked_add(offset).unwrap_or(0),
    }
}

/// A started service: its name, its settings and the application.
type Started = (&'static str, RuntimeConfig, Application);

/// Builds every service, each on its own port and SQLite file; each talks to the ones started
/// before it (conversation to contact, metrics to conversation).
async fn start_all(
    args: &UpArgs,
    clock: &ServiceClock,
    shutdown: &CancellationToken,
) -> Result<Vec<Started>, Box<dyn std::error::Error>> {
    let contact_config = args.service_config(args.contact_port, "contact");
    let contact = charla_contact::build(&contact_config, clock.clone(), shutdown.clone()).await?;
    let contact_url = format!("http://{}", reachable(contact.local_addr()));

    let conversation_config = args.service_config(args.conversation_port, "conversation");
    let conversation = charla_conversation::build(
        &conversation_config,
        &charla_conversation::ServiceConfig::new(contact_url),
        clock.clone(),
        shutdown.clone(),
    )
    .await?;
    let conversation_url = format!("http://{}", reachable(conversation.local_addr()));

    let metrics_config = args.service_config(args.metrics_port, "metrics");
    let metrics = charla_metrics::build(
        &metrics_config,
        &charla_metrics::ServiceConfig {
            allow_rebuild: args.allow_rebuild,
            ..charla_metrics::ServiceConfig::new(conversation_url)
        },
        clock.clone(),
        shutdown.clone(),
    )
    .await?;
    Ok(vec![
        ("contact", contact_config, contact),
        ("conversation", conversation_config, conversation),
        ("metrics", metrics_config, metrics),
    ])
}

/// The address to call a local service at: a wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}

/// Makes sure the key set exists: the development one is created on first start.
fn prepare_keys(keys: &KeySource) -> Result<(), Box<dyn std::error::Error>> {
    let path = keys.jwks_path();
    if keys.is_development() {
        std::fs::create_dir_all(&keys.data_dir)?;
        KeySet::read_or_create(&path)?;
        tracing::warn!(
            jwks = %path.display(),
            "development mode: tokens are signed and checked with a key set made for this machine; \
             set CHARLA_AUTH_JWKS to use your own"
        );
    } else {
        KeySet::read(&path)?;
    }
    Ok(())
}

/// Says how to call the services, with a token ready for the tour's workspace.
fn print_token_help(keys: &KeySource) {
    let workspace = uuid::Uuid::parse_str(TOUR_WORKSPACE)
        .map(charla_runtime::workspace::WorkspaceId::new)
        .ok();
    let token = keys.mint(
        Role::Admin,
        workspace,
        "charla-up",
        Duration::from_secs(24 * 3600),
    );
    match token {
        Ok(token) => {
            println!("Every call carries a token (`charla token --workspace W` makes more).");
            println!("An admin token of workspace {TOUR_WORKSPACE}, valid 24 hours:");
            println!("  export T='authorization: Bearer {token}'");
        }
        Err(error) => println!("No token could be minted: {error}"),
    }
}

/// Starts every service and serves until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> ExitCode {
    charla_runtime::telemetry::init(args.log_format);
    let shutdown = charla_runtime::server::shutdown_on_signals();
    // One clock for all, so a test clock moved through any service moves them all.
    let clock = if args.test_clock {
        ServiceClock::test_from_now()
    } else {
        ServiceClock::System
    };

    if let Err(error) = prepare_keys(&args.keys) {
        eprintln!("charla could not start: {error}");
        return ExitCode::FAILURE;
    }
    let started = start_all(&args, &clock, &shutdown).await;
    let services = match started {
        Ok(services) => services,
        Err(error) => {
            eprintln!("charla could not start: {error}");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };

    println!("charla is up (Ctrl-C stops it):");
    for (name, config, app) in &services {
        println!(
            "  {name:<13} {}   data: {}",
            app.local_addr(),
            config.database_url
        );
        if let Some(admin) = app.admin_addr() {
            println!("  {:<13} metrics: http://{}/metrics", "", reachable(admin));
        }
    }
    print_token_help(&args.keys);

    let mut running = JoinSet::new();
    for (name, _, app) in services {
        running.spawn(async move { (name, app.run().await) });
    }
    let mut code = ExitCode::SUCCESS;
    while let Some(finished) = running.join_next().await {
        match finished {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(error))) => {
                tracing::error!(service = name, %error, "service failed; stopping the others");
                shutdown.cancel();
                code = ExitCode::FAILURE;
            }
            Err(panicked) => {
                tracing::error!(%panicked, "service task panicked; stopping the others");
                shutdown.cancel();
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
