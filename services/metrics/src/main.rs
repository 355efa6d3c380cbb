//! `charla-metrics`: runs the metrics service alone, configured from the environment.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = charla_metrics::Config::parse();
    charla_runtime::telemetry::init(config.runtime.log_format);
    let shutdown = charla_runtime::server::shutdown_on_signals();
    let clock = config.runtime.clock();
    match charla_metrics::build(&config.runtime, &config.service, clock, shutdown).await {
        Ok(app) => match app.run().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "metrics service failed");
                std::process::ExitCode::FAILURE
            }
        },
        Err(error) => {
            tracing::error!(%error, "metrics service could not start");
            std::process::ExitCode::FAILURE
        }
    }
}
