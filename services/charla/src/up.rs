//! `charla up`: every service in one process, each on its own port and SQLite file.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use charla_runtime::app::Application;
use charla_runtime::auth::Role;
use charla_runtime::auth::keys::KeySet;
use charla_runtime::config::{LogFormat, RuntimeConfig};
use charla_runtime::cors::AllowedOrigins;
use charla_runtime::test_clock::ServiceClock;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::credentials::KeySource;

/// Prints a line for whoever started `charla up`. Unlike `println!` it never panics: a closed
/// standard output (`charla up | head`, a log shipper that went away) must not stop the services.
macro_rules! say {
    ($($line:tt)*) => {{
        use std::io::Write as _;
        let _output_gone = writeln!(std::io::stdout(), $($line)*);
    }};
}

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
    /// A service's settings as its own binary reads them (every `CHARLA_*` variable it knows
    /// passes through: pool sizes, partitions, timeouts, limits...), except what `charla up`
    /// decides itself: the addresses, the SQLite file in the data folder, the key set, the log
    /// format and the peers (`peer` flags).
    fn service_config<C: clap::Parser>(
        &self,
        port: u16,
        name: &str,
        peer: &[(&str, String)],
    ) -> Result<C, Box<dyn std::error::Error>> {
        let file = self.keys.data_dir.join(format!("{name}.db"));
        let admin = SocketAddr::new(self.host, admin_port(port, self.admin_port_offset));
        let mut flags = vec![
            ("listen-addr", SocketAddr::new(self.host, port).to_string()),
            ("admin-addr", admin.to_string()),
            ("database-url", format!("sqlite:{}", file.display())),
            ("auth-jwks", self.keys.jwks_path().display().to_string()),
            ("log-format", log_format_name(self.log_format)),
        ];
        let keys = &self.keys;
        flags.extend(keys.issuer.clone().map(|issuer| ("auth-issuer", issuer)));
        flags.extend(
            keys.audience
                .clone()
                .map(|audience| ("auth-audience", audience)),
        );
        flags.extend(peer.iter().cloned());
        let args = std::iter::once(format!("charla-{name}")).chain(
            flags
                .iter()
                .map(|(flag, value)| format!("--{flag}={value}")),
        );
        C::try_parse_from(args).map_err(|error| format!("{name} settings: {error}").into())
    }

    /// What `charla up` changes in every service's shared settings.
    fn adapt(&self, runtime: &mut RuntimeConfig) {
        // A development mode: unless told otherwise, pages on any origin (a local dev server's
        // port) may call.
        if runtime.cors.cors_allowed_origins == AllowedOrigins::default() {
            runtime.cors = charla_runtime::cors::CorsConfig::any_origin();
        }
    }
}

/// The name `--log-format` takes for `format`.
fn log_format_name(format: LogFormat) -> String {
    use clap::ValueEnum;
    format
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
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
    let mut contact_config: charla_contact::Config =
        args.service_config(args.contact_port, "contact", &[])?;
    args.adapt(&mut contact_config.runtime);
    let contact =
        charla_contact::build(&contact_config.runtime, clock.clone(), shutdown.clone()).await?;
    let contact_url = format!("http://{}", reachable(contact.local_addr()));

    let mut conversation_config: charla_conversation::Config = args.service_config(
        args.conversation_port,
        "conversation",
        &[("contact-url", contact_url)],
    )?;
    args.adapt(&mut conversation_config.runtime);
    let conversation = charla_conversation::build(
        &conversation_config.runtime,
        &conversation_config.service,
        clock.clone(),
        shutdown.clone(),
    )
    .await?;
    let conversation_url = format!("http://{}", reachable(conversation.local_addr()));

    let mut metrics_config: charla_metrics::Config = args.service_config(
        args.metrics_port,
        "metrics",
        &[("conversation-url", conversation_url)],
    )?;
    args.adapt(&mut metrics_config.runtime);
    metrics_config.service.allow_rebuild |= args.allow_rebuild;
    let metrics = charla_metrics::build(
        &metrics_config.runtime,
        &metrics_config.service,
        clock.clone(),
        shutdown.clone(),
    )
    .await?;
    Ok(vec![
        ("contact", contact_config.runtime, contact),
        ("conversation", conversation_config.runtime, conversation),
        ("metrics", metrics_config.runtime, metrics),
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
            say!("Every call carries a token (`charla token --workspace W` makes more).");
            say!("An admin token of workspace {TOUR_WORKSPACE}, valid 24 hours:");
            say!("  export T='authorization: Bearer {token}'");
        }
        Err(error) => say!("No token could be minted: {error}"),
    }
}

/// Starts every service and serves until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> ExitCode {
    let telemetry = charla_runtime::telemetry::init(args.log_format, "up");
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

    say!("charla is up (Ctrl-C stops it):");
    for (name, config, app) in &services {
        say!(
            "  {name:<13} {}   data: {}",
            app.local_addr(),
            config.database_url
        );
        if let Some(admin) = app.admin_addr() {
            say!("  {:<13} metrics: http://{}/metrics", "", reachable(admin));
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
    telemetry.shutdown().await;
    code
}
