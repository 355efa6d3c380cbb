//! `charla serve SERVICE`: runs one service, configured from the environment exactly like its own
//! binary (`charla-contact`...), so one image or one binary can run any of them.

use std::process::ExitCode;

/// The service to run, with its settings: flags, or the environment variables `--help` names
/// (exactly like its own binary's).
#[derive(Debug, clap::Subcommand)]
pub enum Service {
    /// The contact service (contacts, channel identities, merges).
    Contact(charla_contact::Config),
    /// The conversation service (the conversation lifecycle).
    Conversation(charla_conversation::Config),
    /// The metrics service (reports, dashboard, leaderboard, export).
    Metrics(charla_metrics::Config),
}

/// Runs `service` until SIGTERM or Ctrl-C.
pub async fn run(service: Service) -> ExitCode {
    use charla_runtime::app::serve_main;
    match service {
        Service::Contact(config) => {
            serve_main("contact", &config.runtime, |clock, shutdown| {
                charla_contact::build(&config.runtime, clock, shutdown)
            })
            .await
        }
        Service::Conversation(config) => {
            serve_main("conversation", &config.runtime, |clock, shutdown| {
                charla_conversation::build(&config.runtime, &config.service, clock, shutdown)
            })
            .await
        }
        Service::Metrics(config) => {
            serve_main("metrics", &config.runtime, |clock, shutdown| {
                charla_metrics::build(&config.runtime, &config.service, clock, shutdown)
            })
            .await
        }
    }
}
