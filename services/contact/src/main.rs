//! `charla-contact`: runs the contact service alone, configured from the environment.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = charla_contact::Config::parse();
    charla_runtime::telemetry::init(config.runtime.log_format);
    let shutdown = charla_runtime::server::shutdown_on_signals();
    let clock = config.runtime.clock();
    let started = charla_contact::build(&config.runtime, clock, shutdown).await;
    match started {
        Ok(app) => match app.run().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "contact service failed");
                std::process::ExitCode::FAILURE
            }
        },
        Err(error) => {
            tracing::error!(%error, "contact service could not start");
            std::process::ExitCode::FAILURE
        }
    }
}
